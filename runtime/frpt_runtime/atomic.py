"""Atomic file writes shared by every layer: temp file beside the target, fsync, rename, fsync the folder.

Readers see the old file or the new one, never half of one; a failed write leaves no temp file behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["atomic_write", "atomic_write_json", "json_bytes"]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(handle)`` into a temp file beside it, fsync, then rename over it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def json_bytes(data: Any) -> bytes:
    """``data`` as sorted, indented UTF-8 JSON with a final newline (deterministic bytes)."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def atomic_write_json(path: Path, data: Any) -> None:
    """:func:`atomic_write` of ``data`` as :func:`json_bytes`."""
    atomic_write(path, lambda handle: handle.write(json_bytes(data)))
