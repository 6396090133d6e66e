"""Exporter: ONNX lowerings, TensorRT engine building, parity against PyTorch (imports as ``frpt_export``)."""
