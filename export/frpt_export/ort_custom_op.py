"""Run plugin-lowered graphs on ONNX Runtime CPU: ``frpt::InhomogeneousSample`` as a Python custom op.

onnxruntime-extensions lets a Python function implement a node of a custom domain; ours calls the project's
reference :func:`frpt.sampling.inhomogeneous_sample`, so the plugin graph's wiring (inputs, attributes,
dtypes, shapes) is proven end to end on a machine without TensorRT. The op is float32 (the exporter keeps
the sampled image float32 in both precisions).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["register_custom_op", "create_session"]

_REGISTERED = False


def register_custom_op() -> None:
    """Register the Python implementation with onnxruntime-extensions (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    import torch
    from onnxruntime_extensions import PyCustomOpDef, onnx_op

    from frpt.sampling import inhomogeneous_sample
    from frpt_export.lowering import PLUGIN_DOMAIN, PLUGIN_OP

    attrs = {
        "out_h": PyCustomOpDef.dt_int64,
        "out_w": PyCustomOpDef.dt_int64,
        "pad": PyCustomOpDef.dt_int64,
        "fwhm": PyCustomOpDef.dt_float,
        "align_corners": PyCustomOpDef.dt_int64,
        "plugin_version": PyCustomOpDef.dt_string,
        "plugin_namespace": PyCustomOpDef.dt_string,
    }

    @onnx_op(
        op_type=f"{PLUGIN_DOMAIN}::{PLUGIN_OP}",
        inputs=[PyCustomOpDef.dt_float, PyCustomOpDef.dt_float],
        outputs=[PyCustomOpDef.dt_float],
        attrs=attrs,
    )
    def _inhomogeneous_sample(image: np.ndarray, saliency: np.ndarray, **kw: Any) -> np.ndarray:
        if int(kw["align_corners"]) != 1:
            raise ValueError("frpt::InhomogeneousSample supports align_corners=1 only")
        with torch.no_grad():
            out = inhomogeneous_sample(
                torch.from_numpy(np.ascontiguousarray(image)),
                torch.from_numpy(np.ascontiguousarray(saliency)),
                (int(kw["out_h"]), int(kw["out_w"])),
                int(kw["pad"]),
                float(kw["fwhm"]),
            )
        return out.numpy()

    _REGISTERED = True


def create_session(onnx_path: str | os.PathLike, providers: list[str] | None = None):
    """ONNX Runtime session able to run both lowerings (the custom op library is attached).

    Args:
        onnx_path: the model file.
        providers: execution providers; CPU by default.

    Returns:
        ``onnxruntime.InferenceSession``.
    """
    import onnxruntime as ort
    from onnxruntime_extensions import get_library_path

    register_custom_op()
    options = ort.SessionOptions()
    options.register_custom_ops_library(get_library_path())
    options.log_severity_level = 3
    return ort.InferenceSession(str(onnx_path), options, providers=providers or ["CPUExecutionProvider"])
