"""Model families: one registry from a family name to its configuration class (torch-free).

A family (``frpt``: FRPT; ``vpt``: VPT semantic proxies) is one module per layer: its config as data here
(``families/<name>.py``), its PyTorch model in ``frpt``, its lowerings in ``frpt_export``. Each layer dispatches on
the family name through its own small registry; this one is the runtime's, and the ``frpt.family`` metadata key of
an export names the entry (absent means ``frpt``, the first family).

Every configuration class is a frozen dataclass with a ``family`` class attribute, the fields the runtime reads
(``input_size``, ``crop_pct``, ``decoder``) and ``to_dict`` / ``to_json`` / ``from_dict`` / ``from_json``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import FRPTConfig
from frpt_runtime.families.vpt import VPTConfig

__all__ = ["DEFAULT_FAMILY", "FAMILIES", "ModelConfig", "config_class", "config_from_dict", "family_of"]


class ModelConfig(Protocol):
    """What every family's configuration offers the runtime."""

    family: ClassVar[str]
    input_size: int
    crop_pct: float
    decoder: str

    def to_dict(self) -> dict[str, Any]: ...

    def to_json(self) -> str: ...


FAMILIES: dict[str, type] = {cls.family: cls for cls in (FRPTConfig, VPTConfig)}
DEFAULT_FAMILY = FRPTConfig.family


def config_class(family: str) -> type:
    """The configuration class of ``family``.

    Raises:
        FrptError: a family this toolkit does not know (a file from a newer toolkit).
    """
    try:
        return FAMILIES[family]
    except KeyError:
        raise FrptError(
            f"unknown model family {family!r} (this toolkit knows {', '.join(sorted(FAMILIES))}): upgrade frpt-toolkit"
        ) from None


def config_from_dict(family: str, data: Any, source: str) -> ModelConfig:
    """Parse ``data`` as the configuration of ``family``.

    Args:
        family: registry name.
        data: the JSON object read from a file.
        source: what the data came from, for the error message (``"model.onnx metadata"``).

    Raises:
        FrptError: unknown family, not an object, unknown keys or invalid values (one line naming ``source``).
    """
    cls = config_class(family)
    if not isinstance(data, dict):
        raise FrptError(f"{source}: the {family} model config is not a JSON object")
    try:
        return cls.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise FrptError(f"{source}: invalid {family} model config: {exc}") from None


def family_of(config: ModelConfig) -> str:
    """The family name of a configuration object."""
    return type(config).family
