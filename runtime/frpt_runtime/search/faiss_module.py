"""The FAISS Python module, imported at first use: whichever distribution provides ``faiss`` wins.

``pip install 'frpt-toolkit[search]'`` installs ``faiss-cpu``; a box that has a GPU build of FAISS installed
instead (conda ``faiss-gpu``, the ``faiss-gpu-cu12`` wheel) imports that one under the same name. GPU
search is used only when the imported module reports GPUs (:func:`gpu_count`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from frpt_runtime.errors import FrptError

__all__ = ["SEARCH_EXTRA_HINT", "gpu_count", "import_faiss"]

SEARCH_EXTRA_HINT = "pip install 'frpt-toolkit[search]' (faiss-cpu), or a GPU build of FAISS"


def import_faiss() -> ModuleType:
    """The ``faiss`` module.

    Raises:
        FrptError: FAISS is not installed (the message names the extra).
    """
    try:
        return importlib.import_module("faiss")
    except ImportError:
        raise FrptError(f"FAISS is not installed: {SEARCH_EXTRA_HINT}") from None


def gpu_count(faiss: ModuleType) -> int:
    """GPUs the imported FAISS can use: 0 for a CPU build (no ``StandardGpuResources``) or a box without GPUs."""
    if not hasattr(faiss, "StandardGpuResources") or not hasattr(faiss, "get_num_gpus"):
        return 0
    return int(faiss.get_num_gpus())
