"""FRPT: Fine-grained Retrieval Prompt Tuning (AAAI 2023) in PyTorch.

Importing the package stays torch-free; the model lives in :mod:`frpt.model`, created through the family
registry :func:`frpt.families.create_model`. The configuration as data is the runtime's
(:class:`frpt_runtime.families.frpt.FRPTConfig`).
"""

from frpt_runtime import __version__

__all__ = ["__version__"]
