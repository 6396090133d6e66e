"""The exporter's family registry: family name -> how that family's model is lowered for ONNX export.

Each family module offers ``LOWERINGS`` (the lowerings it supports), ``complete_options(options) -> LowerOptions``
(the family's defaults filled in, options it does not have refused) and ``lower(model, options) -> nn.Module``:
a copy of the model with its lowerable submodules swapped, whose ``prepare`` + ``embed`` chain is the graph
(the model's own forward, :class:`~frpt_export.graph.Uint8Embedder`, no second forward written for export).
"""

from __future__ import annotations

from types import ModuleType

from torch import nn

from frpt_export.families import frpt as frpt_family
from frpt_export.families import vpt as vpt_family
from frpt_export.graph import LowerOptions
from frpt_runtime.errors import FrptError
from frpt_runtime.families import family_of
from frpt_runtime.families.frpt import FRPTConfig
from frpt_runtime.families.vpt import VPTConfig

__all__ = ["FAMILY_LOWERINGS", "complete_options", "lower_model"]

FAMILY_LOWERINGS: dict[str, ModuleType] = {FRPTConfig.family: frpt_family, VPTConfig.family: vpt_family}


def _family_module(model: nn.Module, options: LowerOptions) -> ModuleType:
    family = family_of(model.config)
    if family not in FAMILY_LOWERINGS:
        raise FrptError(f"this toolkit cannot export the {family!r} family: upgrade frpt-toolkit")
    module = FAMILY_LOWERINGS[family]
    if options.lowering not in module.LOWERINGS:
        have = ", ".join(str(lowering) for lowering in module.LOWERINGS)
        raise FrptError(f"the {family} family has no {options.lowering} lowering (it has: {have}): drop --lowering")
    return module


def complete_options(model: nn.Module, options: LowerOptions) -> LowerOptions:
    """``options`` as ``model``'s family exports them (its defaults filled in), checked against the family.

    Raises:
        FrptError: a family this toolkit cannot export, a lowering or option the family does not have.
    """
    return _family_module(model, options).complete_options(options)


def lower_model(model: nn.Module, options: LowerOptions) -> nn.Module:
    """The export module of ``model`` (any registered family) for ``options``.

    Raises:
        FrptError: a family this toolkit cannot export, a lowering the family does not have.
    """
    return _family_module(model, options).lower(model, options)
