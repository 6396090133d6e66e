"""Run plugin-lowered graphs on ONNX Runtime: ``frpt::InhomogeneousSample`` as a Python custom op (numpy).

onnxruntime-extensions lets a Python function implement a node of a custom domain; ours is the numpy matrix form
:func:`frpt_runtime.sampling_matrices.inhomogeneous_sample` (tests hold it to the PyTorch reference), so the
plugin graph's wiring (inputs, attributes, dtypes, shapes) is proven end to end on a machine without TensorRT,
and without torch. The op is float32 (the exporter keeps the sampled image float32 in both precisions).

onnxruntime-extensions terminates the process when a Python op raises (it does not turn the exception into an
ONNX Runtime error), so the op never raises: a node whose inputs or attributes break the contract returns NaN of
the image's shape and records the reason, which the ONNX Runtime backend collects after the run
(:func:`take_op_error`) and raises as one FrptError. The exporter only ever writes nodes that satisfy it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from frpt_runtime.contract import PLUGIN_DOMAIN, PLUGIN_OP
from frpt_runtime.errors import FrptError
from frpt_runtime.sampling_matrices import inhomogeneous_sample

__all__ = ["CUSTOM_OP_NAME", "register_custom_ops", "take_op_error"]

CUSTOM_OP_NAME = f"{PLUGIN_DOMAIN}:{PLUGIN_OP}"  # how ONNX Runtime names the node's op in its errors
_REGISTERED = False
_ERRORS: list[str] = []  # reasons recorded by the op since the last take_op_error()


def _contract_violation(image: np.ndarray, saliency: np.ndarray, kw: dict[str, Any]) -> str | None:
    """Why the node's inputs / attributes break the op's contract, or ``None``."""
    n = image.shape[0] if image.ndim == 4 else -1
    if image.ndim != 4 or saliency.ndim != 4 or saliency.shape[:2] != (n, 1) or saliency.shape[2] != saliency.shape[3]:
        return f"needs image [N, C, H, W] and saliency [N, 1, g, g], got {list(image.shape)} and {list(saliency.shape)}"
    if int(kw["align_corners"]) != 1:
        return f"supports align_corners=1 only, got {kw['align_corners']}"
    if int(kw["out_h"]) < 1 or int(kw["out_w"]) < 1 or int(kw["pad"]) < 0 or not float(kw["fwhm"]) > 0:
        return (
            f"needs out_h, out_w >= 1, pad >= 0, fwhm > 0, got {kw['out_h']}, {kw['out_w']}, {kw['pad']}, {kw['fwhm']}"
        )
    if saliency.shape[2] < 2:
        return f"needs a saliency grid of at least 2 x 2, got {saliency.shape[2]}"
    return None


def take_op_error() -> str | None:
    """The first contract violation the op recorded since the last call (clearing the record), or ``None``."""
    first = _ERRORS[0] if _ERRORS else None
    _ERRORS.clear()
    return first


def _register_python_op(extensions: Any) -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    dt = extensions.PyCustomOpDef
    attrs = {
        "out_h": dt.dt_int64,
        "out_w": dt.dt_int64,
        "pad": dt.dt_int64,
        "fwhm": dt.dt_float,
        "align_corners": dt.dt_int64,
        "plugin_version": dt.dt_string,
        "plugin_namespace": dt.dt_string,
    }

    @extensions.onnx_op(
        op_type=f"{PLUGIN_DOMAIN}::{PLUGIN_OP}", inputs=[dt.dt_float, dt.dt_float], outputs=[dt.dt_float], attrs=attrs
    )
    def _inhomogeneous_sample(image: np.ndarray, saliency: np.ndarray, **kw: Any) -> np.ndarray:
        problem = _contract_violation(image, saliency, kw)
        if problem is not None:  # never raise here: the extension would terminate the process
            _ERRORS.append(f"{PLUGIN_DOMAIN}::{PLUGIN_OP} {problem}")
            return np.full(image.shape, np.nan, np.float32)
        out_hw = (int(kw["out_h"]), int(kw["out_w"]))
        return inhomogeneous_sample(image, saliency, out_hw, int(kw["pad"]), float(kw["fwhm"]))

    _REGISTERED = True


def register_custom_ops(options: Any, model: Path) -> None:
    """Make ``frpt::InhomogeneousSample`` known to an ONNX Runtime ``SessionOptions`` (idempotent per process).

    Raises:
        FrptError: onnxruntime-extensions is not installed (naming the extra).
    """
    try:
        extensions = importlib.import_module("onnxruntime_extensions")
    except ImportError:
        raise FrptError(
            f"{model} uses the plugin lowering (custom op {PLUGIN_DOMAIN}::{PLUGIN_OP}), which ONNX Runtime runs "
            "through onnxruntime-extensions: pip install 'frpt-toolkit[export]', or run the engine with TensorRT "
            "and the plugin library"
        ) from None
    _register_python_op(extensions)
    options.register_custom_ops_library(extensions.get_library_path())
