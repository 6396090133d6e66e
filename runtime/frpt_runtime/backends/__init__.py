"""Inference backends behind one small interface (ONNX Runtime, TensorRT), each importing its heavy module lazily."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from frpt_runtime.backends.base import Backend
from frpt_runtime.contract import ONNX_SUFFIX, is_engine_path
from frpt_runtime.errors import FrptError

__all__ = ["Backend", "backend_for_file", "create_backend"]


def create_backend(
    *,
    onnx: str | Path | None = None,
    engine: str | Path | None = None,
    providers: Sequence[str] = (),
    device: str = "auto",
    plugin_lib: str | Path | None = None,
) -> Backend:
    """The backend for exactly one model file (not yet activated).

    Args:
        onnx: an ``.onnx`` export -> :class:`~frpt_runtime.backends.onnxruntime_backend.OnnxRuntimeBackend`.
        engine: a ``.plan`` -> :class:`~frpt_runtime.backends.tensorrt_backend.TensorRTBackend`.
        providers: ONNX Runtime execution providers (``cpu``, ``cuda``, ``tensorrt``); ONNX only.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (:mod:`frpt_runtime.devices`).
        plugin_lib: plugin library path for an engine (default: ``FRPT_PLUGIN_LIB`` / packaged).

    Raises:
        FrptError: both or neither of ``onnx`` / ``engine``, a file given under the other option (by its
            suffix), providers given with an engine, or a device the backend cannot use.
    """
    if (onnx is None) == (engine is None):
        raise FrptError("pass exactly one model: --onnx MODEL.onnx or --engine MODEL.plan")
    if onnx is not None and is_engine_path(onnx):
        raise FrptError(f"{onnx} is a TensorRT engine, not an ONNX file: pass it with --engine")
    if engine is not None and Path(engine).suffix.lower() == ONNX_SUFFIX:
        raise FrptError(f"{engine} is an ONNX file, not a TensorRT engine: pass it with --onnx")
    if onnx is not None:
        if plugin_lib is not None:
            raise FrptError("--plugin-lib applies to TensorRT engines only (ONNX Runtime runs the plugin node itself)")
        from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(onnx, providers=providers, device=device)
    if providers:
        raise FrptError("--providers applies to ONNX Runtime only: drop it with --engine")
    from frpt_runtime.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(engine, device=device, plugin_lib=plugin_lib)


def backend_for_file(
    model: str | Path, *, providers: Sequence[str] = (), device: str = "auto", plugin_lib: str | Path | None = None
) -> Backend:
    """:func:`create_backend` choosing ONNX Runtime or TensorRT by ``model``'s suffix (engine suffixes: TensorRT)."""
    if is_engine_path(model):
        return create_backend(engine=model, providers=providers, device=device, plugin_lib=plugin_lib)
    return create_backend(onnx=model, providers=providers, device=device, plugin_lib=plugin_lib)
