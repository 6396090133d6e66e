"""What every family's model config shares as a file record: the JSON round trip and ``replace``.

A config is a frozen dataclass saved as JSON beside checkpoints, ONNX files and engines. Reading one back
refuses keys this toolkit does not know (a file from a newer toolkit), turns JSON lists back into the tuple
fields, and gives fields newer than some files the value those files were made with (:data:`READ_DEFAULTS`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar, TypeVar

__all__ = ["READ_DEFAULTS", "ConfigRecord"]

# Fields added after files were written, and what a file without them was made with: images were decoded
# exactly (torchvision's pixels) before the ``decoder`` field existed.
READ_DEFAULTS: dict[str, Any] = {"decoder": "exact"}

_Config = TypeVar("_Config", bound="ConfigRecord")


class ConfigRecord:
    """Mixin of a family's frozen config dataclass (``family`` names it in messages)."""

    family: ClassVar[str]
    _TUPLE_FIELDS: ClassVar[tuple[str, ...]] = ("pixel_mean", "pixel_std", "class_names")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls: type[_Config], data: dict[str, Any]) -> _Config:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            ValueError: an unknown key (a config from a newer toolkit), or a value the config refuses.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown {cls.family.upper()} config keys {unknown}: written by a newer toolkit?")
        kw = {key: value for key, value in READ_DEFAULTS.items() if key in names} | dict(data)
        for key in cls._TUPLE_FIELDS:
            if isinstance(kw.get(key), list):
                kw[key] = tuple(kw[key])
        return cls(**kw)

    @classmethod
    def from_json(cls: type[_Config], text: str) -> _Config:
        return cls.from_dict(json.loads(text))

    def replace(self: _Config, **changes: Any) -> _Config:
        return dataclasses.replace(self, **changes)
