"""Atomic file writes shared by every layer: temp file beside the target, fsync, rename, fsync the folder.

Readers see the old file or the new one, never half of one; a failed write leaves no temp file behind, and a
write killed before its rename leaves ``.NAME.PID.tmp``, which :func:`remove_stale_temps` clears (callers do
that while they hold the folder's lock, :mod:`frpt_runtime.out_lock`). A write that fails because the disk is
full says so, naming the path (:func:`disk_full_error`), whatever words the failing library used.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from frpt_runtime.errors import FrptError

__all__ = [
    "atomic_write",
    "atomic_write_json",
    "disk_full_error",
    "fsync_dir",
    "json_bytes",
    "remove_stale_temps",
    "utf8_json",
]

# Below this many free bytes a failed write is reported as a full disk (numpy, for one, reports a short write
# as "N requested and M written", without an errno).
_FULL_DISK_BYTES = 1 << 20


def fsync_dir(folder: Path) -> None:
    """fsync a folder, so the names created or renamed in it are durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def disk_full_error(path: Path, exc: OSError) -> FrptError | None:
    """The one-line error for a write to ``path`` that failed because its file system is full, or ``None``.

    Decided by the errno (ENOSPC, EDQUOT) or, when the failing library gave none, by the free space left.
    """
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if not full and exc.errno is None:
        try:
            info = os.statvfs(path.parent)
        except OSError:
            return None
        full = info.f_bavail * info.f_frsize < _FULL_DISK_BYTES
    if not full:
        return None
    return FrptError(f"disk full at {path}: free space on that file system (or write elsewhere) and run again")


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(handle)`` into a temp file beside it, fsync, then rename over it.

    Raises:
        FrptError: the disk filled up (see :func:`disk_full_error`); other OSErrors propagate unchanged.
    """
    path = Path(path)
    tmp = _temp_path(path)
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        full = disk_full_error(path, exc)  # checked before the temp file's space is given back
        tmp.unlink(missing_ok=True)
        if full is not None:
            raise full from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temp files interrupted :func:`atomic_write` calls of ``path`` left beside it; return them.

    Only safe while no other process may be writing ``path`` (hold the folder's lock).
    """
    path = Path(path)
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp"))
    for item in stale:
        item.unlink(missing_ok=True)
    return stale


def utf8_json(text: str) -> bytes:
    """JSON text as UTF-8; a lone surrogate (a non-UTF-8 file name in PEP 383 form) becomes a ``\\udcXX`` escape.

    Inside JSON strings that escape is valid JSON and reads back to the same ``str``, so the name round-trips.
    """
    return text.encode("utf-8", "backslashreplace")


def json_bytes(data: Any) -> bytes:
    """``data`` as sorted, indented UTF-8 JSON with a final newline (deterministic bytes; see :func:`utf8_json`)."""
    return utf8_json(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def atomic_write_json(path: Path, data: Any) -> None:
    """:func:`atomic_write` of ``data`` as :func:`json_bytes`."""
    atomic_write(path, lambda handle: handle.write(json_bytes(data)))
