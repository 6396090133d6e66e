"""Run plugin-lowered graphs on ONNX Runtime: ``frpt::InhomogeneousSample`` as a Python custom op (numpy).

onnxruntime-extensions lets a Python function implement a node of a custom domain; ours is the numpy matrix form
:func:`frpt_runtime.sampling_matrices.inhomogeneous_sample` (tests hold it to the PyTorch reference), so the
plugin graph's wiring (inputs, attributes, dtypes, shapes) is proven end to end on a machine without TensorRT,
and without torch. The op is float32 (the exporter keeps the sampled image float32 in both precisions).

onnxruntime-extensions terminates the process when a Python op raises (it does not turn the exception into an
ONNX Runtime error), so the op checks its inputs first and raises one message naming the contract it expects;
the exporter only ever writes the node with inputs that satisfy it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from frpt_runtime.contract import PLUGIN_DOMAIN, PLUGIN_OP
from frpt_runtime.errors import FrptError
from frpt_runtime.sampling_matrices import inhomogeneous_sample

__all__ = ["CUSTOM_OP_NAME", "register_custom_ops"]

CUSTOM_OP_NAME = f"{PLUGIN_DOMAIN}:{PLUGIN_OP}"  # how ONNX Runtime names the node's op in its errors
_REGISTERED = False


def _check_inputs(image: np.ndarray, saliency: np.ndarray, align_corners: int) -> None:
    n = image.shape[0] if image.ndim == 4 else -1
    if image.ndim != 4 or saliency.ndim != 4 or saliency.shape[:2] != (n, 1) or saliency.shape[2] != saliency.shape[3]:
        raise ValueError(
            f"{PLUGIN_DOMAIN}::{PLUGIN_OP} needs image [N, C, H, W] and saliency [N, 1, g, g], got "
            f"{list(image.shape)} and {list(saliency.shape)}"
        )
    if align_corners != 1:
        raise ValueError(f"{PLUGIN_DOMAIN}::{PLUGIN_OP} supports align_corners=1 only")


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
        _check_inputs(image, saliency, int(kw["align_corners"]))
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
