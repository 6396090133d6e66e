"""SHA-256 of files and of bytes as they are written (torch-free): the hashes that bind outputs and proofs."""

from __future__ import annotations

import hashlib
import os
from typing import Any, BinaryIO

__all__ = ["HashingWriter", "sha256_file"]

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class HashingWriter:
    """A write-only file object that passes bytes to ``handle`` and hashes them on the way (``hexdigest()``)."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._digest.update(view)
        return self._handle.write(view)

    def flush(self) -> None:
        self._handle.flush()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()
