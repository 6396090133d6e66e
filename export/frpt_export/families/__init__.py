"""The exporter's family registry: family name -> how that family's model is lowered for ONNX export.

Each family module offers ``LOWERINGS`` (the lowerings it supports) and ``lower(model, options) -> nn.Module``:
a copy of the model with its lowerable submodules swapped, whose ``prepare`` + ``embed`` chain is the graph
(the model's own forward, :class:`~frpt_export.graph.Uint8Embedder`, no second forward written for export).
"""

from __future__ import annotations

from types import ModuleType

from torch import nn

from frpt_export.families import frpt as frpt_family
from frpt_export.graph import LowerOptions
from frpt_runtime.errors import FrptError
from frpt_runtime.families import family_of
from frpt_runtime.families.frpt import FRPTConfig

__all__ = ["FAMILY_LOWERINGS", "lower_model"]

FAMILY_LOWERINGS: dict[str, ModuleType] = {FRPTConfig.family: frpt_family}


def lower_model(model: nn.Module, options: LowerOptions) -> nn.Module:
    """The export module of ``model`` (any registered family) for ``options``.

    Raises:
        FrptError: a lowering the family does not have.
    """
    family = family_of(model.config)
    if family not in FAMILY_LOWERINGS:
        raise FrptError(f"this toolkit cannot export the {family!r} family: upgrade frpt-toolkit")
    module = FAMILY_LOWERINGS[family]
    if options.lowering not in module.LOWERINGS:
        have = ", ".join(str(lowering) for lowering in module.LOWERINGS)
        raise FrptError(f"the {family} family has no {options.lowering} lowering (it has: {have})")
    return module.lower(model, options)
