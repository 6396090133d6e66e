"""Inference backends behind one small interface (ONNX Runtime, TensorRT), each importing its heavy module lazily."""

from __future__ import annotations

from pathlib import Path
from collections.abc import Sequence

from frpt.errors import FrptError
from frpt_runtime.backends.base import Backend

__all__ = ["Backend", "create_backend"]


def create_backend(
    *,
    onnx: str | Path | None = None,
    engine: str | Path | None = None,
    providers: Sequence[str] = (),
    device: int = 0,
    plugin_lib: str | None = None,
) -> Backend:
    """The backend for exactly one model file (not yet activated).

    Args:
        onnx: an ``.onnx`` export -> :class:`~frpt_runtime.backends.onnxruntime_backend.OnnxRuntimeBackend`.
        engine: a ``.plan`` -> :class:`~frpt_runtime.backends.tensorrt_backend.TensorRTBackend`.
        providers: ONNX Runtime execution providers (``cpu``, ``cuda``, ``tensorrt``); ONNX only.
        device: CUDA device ordinal.
        plugin_lib: plugin library path for an engine (default: ``FRPT_PLUGIN_LIB`` / packaged).

    Raises:
        FrptError: both or neither of ``onnx`` / ``engine``, a file given under the other option (by its
            suffix), or providers given with an engine.
    """
    if (onnx is None) == (engine is None):
        raise FrptError("pass exactly one model: --onnx MODEL.onnx or --engine MODEL.plan")
    if onnx is not None and Path(onnx).suffix.lower() in (".plan", ".engine", ".trt"):
        raise FrptError(f"{onnx} is a TensorRT engine, not an ONNX file: pass it with --engine")
    if engine is not None and Path(engine).suffix.lower() == ".onnx":
        raise FrptError(f"{engine} is an ONNX file, not a TensorRT engine: pass it with --onnx")
    if onnx is not None:
        from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(onnx, providers=providers, device=device)
    if providers:
        raise FrptError("--providers applies to ONNX Runtime only: drop it with --engine")
    from frpt_runtime.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(engine, device=device, plugin_lib=plugin_lib)
