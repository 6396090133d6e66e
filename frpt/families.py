"""The model layer's family registry: family name -> the factory that builds that family's PyTorch model.

Every family's model offers the same surface to the shared code (checkpoints, training loop helpers,
evaluation, the exporter): ``config``, ``embedding_dim``, ``prepare(uint8 [N, S, S, 3]) -> float [N, 3, S, S]``,
``embed(x) -> float32 [N, D]`` (L2-normalised), ``embed_uint8(images)``, ``trainable_parameters()`` and
``parameter_report()``. The config's class names the family (:func:`frpt_runtime.families.family_of`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from frpt import model as frpt_model
from frpt_runtime.errors import FrptError
from frpt_runtime.families import ModelConfig, family_of
from frpt_runtime.families.frpt import FRPTConfig

__all__ = ["FACTORIES", "create_model"]

# family -> create_model(config, *, pretrained=True, backbone_weights=None, random_init=False)
FACTORIES: dict[str, Callable[..., nn.Module]] = {FRPTConfig.family: frpt_model.create_model}


def create_model(config: ModelConfig, **options: Any) -> nn.Module:
    """Build the model of ``config``'s family (``options`` as that family's ``create_model`` takes them).

    Raises:
        FrptError: unknown backbone, missing or unreadable weights (from the family's factory).
    """
    family = family_of(config)
    if family not in FACTORIES:
        raise FrptError(f"this toolkit has no PyTorch model for the {family!r} family: upgrade frpt-toolkit")
    return FACTORIES[family](config, **options)
