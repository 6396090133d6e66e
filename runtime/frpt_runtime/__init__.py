"""The FRPT toolkit's torch-free bottom layer: the contract, model configs as data, errors, file I/O, image
decoding, backends (ONNX Runtime, TensorRT), batched embedding and parity verification."""

__version__ = "0.1.0"
