"""The TensorRT Python module, chosen at import: ``tensorrt`` (10.x / 11.x) where installed, else
``tensorrt_rtx`` (TensorRT-RTX, which builds engines on a CPU-only machine). The engine builder and the
runtime's TensorRT backend both get it here, so the same code runs under either.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from frpt_runtime.errors import FrptError

__all__ = ["TRT_MODULES", "import_tensorrt"]

TRT_MODULES = ("tensorrt", "tensorrt_rtx")


def import_tensorrt(hint: str) -> tuple[ModuleType, str]:
    """``(module, flavour)`` of the first importable of :data:`TRT_MODULES`.

    Args:
        hint: what the user can do instead, appended to the error.

    Raises:
        FrptError: neither is installed.
    """
    for name in TRT_MODULES:
        try:
            return importlib.import_module(name), name
        except ImportError:
            continue
    raise FrptError(f"TensorRT is not installed (neither 'tensorrt' nor 'tensorrt_rtx' imports): {hint}")
