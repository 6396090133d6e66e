"""Inference backends behind one small interface (ONNX Runtime, TensorRT), each importing its heavy module lazily."""
