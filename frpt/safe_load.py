"""Loading torch files that must hold plain data only (checkpoints, backbone weights), refused in one line.

:func:`load_plain` is ``torch.load(weights_only=True)``, which never unpickles an arbitrary object. What it says
when it refuses a file varies with the global involved and the torch release ("Unsupported global ...", "...
whose module posix is blocked", "Unsupported operand ..."), and it words a file that is not a pickle at all the
same way; so the refusal is worded from the file itself: :func:`pickle_globals` walks the pickle streams with
:func:`pickletools.genops` (which decodes opcodes and executes nothing) and returns the ``module.name`` globals
they reference, or ``None`` when the file holds no well-formed pickle (a truncated or foreign file).

Streams: a torch zip archive's ``*/data.pkl`` member, or the file itself (torch's legacy format is several
pickles in a row followed by raw storage bytes; a plain ``pickle.dump`` file is one pickle).
"""

from __future__ import annotations

import io
import pickle
import pickletools
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from frpt_runtime.errors import FrptError

__all__ = ["load_plain", "pickle_globals"]

_PLAIN_MODULES = ("torch", "collections")  # what a pickle of tensors, dicts and OrderedDicts references

_STRING_OPS = {
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
    "UNICODE",
    "SHORT_BINSTRING",
    "BINSTRING",
    "STRING",
}
_PUT_OPS, _GET_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}, {"GET", "BINGET", "LONG_BINGET"}


def _stream_bytes(path: Path) -> bytes:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if name.endswith("data.pkl")]
            return archive.read(names[0]) if names else b""
    return path.read_bytes()


def _one_stream(stream: io.BytesIO, found: list[str]) -> None:
    """Walk one pickle (up to its STOP) and append the globals it references; raises ValueError if malformed."""
    strings: list[str] = []
    memo: dict[object, str] = {}
    last: str | None = None
    for opcode, arg, _ in pickletools.genops(stream):
        name, pushed = opcode.name, None
        if name in _STRING_OPS:
            pushed = arg.decode("latin-1") if isinstance(arg, bytes) else str(arg)
        elif name in _GET_OPS and arg in memo:
            pushed = memo[arg]
        elif name in _PUT_OPS and last is not None:
            memo[arg] = last
        elif name == "MEMOIZE" and last is not None:
            memo[len(memo)] = last
        elif name in ("GLOBAL", "INST"):
            found.append(".".join(str(arg).split(" ", 1)))
        elif name == "STACK_GLOBAL" and len(strings) >= 2:
            found.append(f"{strings[-2]}.{strings[-1]}")
        if pushed is not None:
            strings.append(pushed)
        last = pushed


def pickle_globals(path: str | Path) -> list[str] | None:
    """The ``module.name`` globals the pickle streams in ``path`` reference, or ``None`` if it holds no pickle.

    Never unpickles: opcodes are decoded, not executed.
    """
    try:
        data = _stream_bytes(Path(path))
    except (OSError, zipfile.BadZipFile):
        return None
    stream, found, complete = io.BytesIO(data), [], 0
    while stream.tell() < len(data):
        try:
            _one_stream(stream, found)
        except ValueError:  # not (or no longer) pickle bytes: the raw storages of the legacy format, or garbage
            break
        complete += 1
    return found if complete else None


def load_plain(path: str | Path, map_location: Any, what: str, fix: str) -> Any:
    """``torch.load(path, weights_only=True)``; any failure is one FrptError.

    Args:
        path: the file.
        map_location: as for ``torch.load``.
        what: what the file is, for messages (``"checkpoint"``, ``"backbone weights"``).
        fix: what to do about a file holding Python objects.

    Raises:
        FrptError: "contains pickled Python objects (module.name)" when the file is a pickle the weights-only
            loader refused; "truncated or not a ..." for anything else it cannot read.
    """
    try:
        with warnings.catch_warnings():  # a foreign pickle protocol is refused below, in one line, if at all
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError for objects, RuntimeError/EOFError for truncation
        found = pickle_globals(path) if isinstance(exc, pickle.UnpicklingError) else None
        if found is not None:
            foreign = [name for name in found if name.split(".")[0] not in _PLAIN_MODULES]
            named = f" ({foreign[0]})" if foreign else ""
            raise FrptError(
                f"refusing {what} {path}: it contains pickled Python objects{named}, not plain weights; {fix}"
            ) from None
        raise FrptError(f"cannot read {what} {path} (truncated or not a {what} file): {type(exc).__name__}") from None
