"""Typed reading of values that come from files: the one place that checks their types and ranges (torch-free).

Every reader of a file the toolkit did not just write in memory -- the model config in ONNX metadata, an engine
sidecar, a reference bundle's meta, an ``frpt-embed`` manifest, a resume journal -- declares its fields as a
*spec* (field name -> :class:`Check`) and calls :func:`check_fields` (raises :class:`FieldError`, a
``ValueError``) or :func:`read_fields` (raises :class:`~frpt_runtime.errors.FrptError` naming the file and the
fix). A wrong type or an out-of-range value is therefore one line -- ``model.onnx frpt.config metadata: crop_pct
must be a number in (0, 1], got 2.0`` -- never a traceback deep inside the code that used it.

Rules the checks share: ``bool`` is never an integer or a number (JSON ``true`` is not ``1``); an integer is an
``int`` (``128.0`` is refused, so every consumer sees the same value); a number is a finite ``int`` or ``float``;
a sequence is a JSON array (``list``) or a ``tuple``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from frpt_runtime.errors import FrptError

__all__ = [
    "Check",
    "FieldError",
    "boolean",
    "check_fields",
    "choice",
    "hex_digest",
    "integer",
    "json_value",
    "mapping",
    "number",
    "optional",
    "read_fields",
    "record",
    "sequence",
    "string",
]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class FieldError(ValueError):
    """A field of the wrong type or out of range; the message is one line (``name must be ..., got ...``)."""


@dataclass(frozen=True)
class Check:
    """What a field must be: ``what`` completes "must be ..." in messages; ``test(value)`` says whether it is."""

    what: str
    test: Callable[[Any], bool]

    def __call__(self, value: Any) -> bool:
        return self.test(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high}"
    return ""


def _in_range(value: float, low: float | None, high: float | None, low_open: bool, high_open: bool) -> bool:
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    return above and below


def integer(low: int | None = None, high: int | None = None) -> Check:
    """An ``int`` (not a bool, not a float) in ``[low, high]``."""
    return Check(
        f"an integer{_range_text(low, high, False, False)}",
        lambda v: _is_int(v) and _in_range(v, low, high, False, False),
    )


def number(
    low: float | None = None, high: float | None = None, *, low_open: bool = False, high_open: bool = False
) -> Check:
    """A finite ``int`` or ``float`` (not a bool) in the given range (bounds closed unless ``*_open``)."""
    return Check(
        f"a number{_range_text(low, high, low_open, high_open)}",
        lambda v: _is_number(v) and _in_range(v, low, high, low_open, high_open),
    )


def string(*, nonempty: bool = False) -> Check:
    """A ``str`` (non-empty when asked)."""
    return Check(
        "a non-empty string" if nonempty else "a string", lambda v: isinstance(v, str) and bool(v or not nonempty)
    )


def choice(choices: tuple[str, ...] | list[str]) -> Check:
    """One of the given strings."""
    options = tuple(choices)
    return Check(f"one of {', '.join(options)}", lambda v: isinstance(v, str) and v in options)


def boolean() -> Check:
    """``true`` or ``false``."""
    return Check("true or false", lambda v: isinstance(v, bool))


def hex_digest() -> Check:
    """A lowercase hex SHA-256 digest (64 characters)."""
    return Check("a sha256 hex digest", lambda v: isinstance(v, str) and _HEX64.match(v) is not None)


def optional(check: Check) -> Check:
    """``null`` or what ``check`` accepts."""
    return Check(f"null or {check.what}", lambda v: v is None or check(v))


def sequence(item: Check, *, length: int | None = None) -> Check:
    """A list (or tuple) whose every element passes ``item``; exactly ``length`` long when given."""
    size = "" if length is None else f"{length} "
    return Check(
        f"a list of {size}values, each {item.what}",
        lambda v: isinstance(v, list | tuple) and (length is None or len(v) == length) and all(item(x) for x in v),
    )


def mapping(key: Check, value: Check) -> Check:
    """An object whose keys pass ``key`` and values pass ``value``."""
    return Check(
        f"an object of {key.what} -> {value.what}",
        lambda v: isinstance(v, dict) and all(key(k) and value(x) for k, x in v.items()),
    )


def record(spec: Mapping[str, Check]) -> Check:
    """An object holding at least the fields of ``spec``, each passing its check."""
    return Check(
        f"an object with {', '.join(spec)}",
        lambda v: isinstance(v, dict) and all(name in v and check(v[name]) for name, check in spec.items()),
    )


def json_value() -> Check:
    """Anything JSON can hold (for free-form fields checked elsewhere)."""
    return Check("a JSON value", lambda v: True)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_fields(data: Any, spec: Mapping[str, Check], *, optional_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check ``data`` (a JSON object) against ``spec``; keys outside the spec are left alone.

    Args:
        data: the parsed object.
        spec: field name -> check.
        optional_keys: spec fields that may be absent.

    Returns:
        ``data`` itself (a ``dict``), for chaining.

    Raises:
        FieldError: ``data`` is not an object, a required field is missing, or a field fails its check.
    """
    if not isinstance(data, dict):
        raise FieldError(f"must be a JSON object, got {type(data).__name__}")
    missing = [name for name in spec if name not in data and name not in optional_keys]
    if missing:
        raise FieldError(f"lacks the field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    for name, check in spec.items():
        if name in data and not check(data[name]):
            raise FieldError(f"{name} must be {check.what}, got {_shown(data[name])}")
    return data


def read_fields(
    data: Any, spec: Mapping[str, Check], source: str, fix: str, *, optional_keys: tuple[str, ...] = ()
) -> dict[str, Any]:
    """:func:`check_fields` for a file: a failure becomes ``FrptError("{source}: {problem}: {fix}")``."""
    try:
        return check_fields(data, spec, optional_keys=optional_keys)
    except FieldError as exc:
        raise FrptError(f"{source}: {exc}: {fix}") from None
