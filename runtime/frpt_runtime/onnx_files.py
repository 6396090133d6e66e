"""What an ONNX model file makes a reader open besides itself, checked before any backend or builder sees it.

An ONNX model may keep tensors in *external data* files: a ``TensorProto`` whose ``external_data`` entries name a
``location`` (plus ``offset`` / ``length``) that ONNX Runtime and TensorRT's parser resolve against the model's
folder. Left unchecked, that is a read of any file on the box (a ``location`` of ``../../etc/passwd``, or a
symlink to it, builds into a plan holding those bytes). :func:`check_external_data` refuses, in one line, a
location that is absolute, climbs out with ``..``, resolves (after every symlink) outside the model's folder, is
not a regular file, or ends before ``offset + length``. :func:`model_sha256` hashes the model together with its
external data, so the hash that manifests, sidecars and reference bundles record names all the bytes a backend
runs.

The runtime may not import ``onnx``, so the locations are read by a minimal protobuf wire-format walk that
descends only into the fields that can hold a ``TensorProto`` (numbers from ``onnx.proto``): ModelProto.graph (7),
.training_info (20), .functions (25); GraphProto.node (1), .initializer (5), .sparse_initializer (15);
NodeProto.attribute (5); AttributeProto.t (5), .g (6), .tensors (10), .graphs (11), .sparse_tensor (22),
.sparse_tensors (23); FunctionProto.node (7), .attribute_proto (11); SparseTensorProto.values (1), .indices
(2); TrainingInfoProto.initialization (1), .algorithm (2); TensorProto.name (8), .external_data (13:
StringStringEntryProto key 1 / value 2). Every tensor with a ``location`` entry is checked, whatever its
``data_location`` says.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from frpt_runtime.digests import sha256_file
from frpt_runtime.errors import FrptError

__all__ = ["ExternalData", "check_external_data", "external_data", "model_sha256"]

_MODEL, _GRAPH, _NODE, _ATTRIBUTE, _TENSOR, _SPARSE, _FUNCTION, _TRAINING = range(8)
_CHILDREN: dict[int, dict[int, int]] = {
    _MODEL: {7: _GRAPH, 20: _TRAINING, 25: _FUNCTION},
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},
    _NODE: {5: _ATTRIBUTE},
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},
    _FUNCTION: {7: _NODE, 11: _ATTRIBUTE},
    _TRAINING: {1: _GRAPH, 2: _GRAPH},
}
_TENSOR_NAME, _TENSOR_EXTERNAL = 8, 13
_FIX = "keep external data as regular files inside the model's folder (export it again)"


class _Malformed(Exception):
    """The bytes are not a protobuf message."""


@dataclass(frozen=True)
class ExternalData:
    """One tensor's external data reference: its tensor, and the ``location`` / ``offset`` / ``length`` entries."""

    tensor: str
    location: str
    offset: str | None = None
    length: str | None = None


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Malformed
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """``(field number, value)`` of one message: an int for varints, the bytes for everything else."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        kind, value = key & 7, None
        if kind == 0:
            value, pos = _varint(buf, pos)
        elif kind in (1, 5):
            size = 8 if kind == 1 else 4
            value, pos = buf[pos : pos + size], pos + size
        elif kind == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        else:  # groups (3, 4) are not used by ONNX; 6, 7 do not exist
            raise _Malformed
        if pos > end:
            raise _Malformed
        yield key >> 3, value


def _text(value: int | memoryview) -> str:
    if isinstance(value, int):
        raise _Malformed
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed from None


def _tensor_reference(buf: memoryview) -> ExternalData | None:
    name, entries = "", {}
    for number, value in _fields(buf):
        if number == _TENSOR_NAME:
            name = _text(value)
        elif number == _TENSOR_EXTERNAL:
            if isinstance(value, int):
                raise _Malformed
            pair = dict(_fields(value))
            entries[_text(pair.get(1, memoryview(b"")))] = _text(pair.get(2, memoryview(b"")))
    if "location" not in entries:
        return None
    return ExternalData(name, entries["location"], entries.get("offset"), entries.get("length"))


def _walk(model: memoryview) -> list[ExternalData]:
    found, stack = [], [(_MODEL, model)]
    while stack:
        kind, buf = stack.pop()
        if kind == _TENSOR:
            reference = _tensor_reference(buf)
            if reference is not None:
                found.append(reference)
            continue
        children = _CHILDREN[kind]
        for number, value in _fields(buf):
            if number in children:
                if isinstance(value, int):
                    raise _Malformed
                stack.append((children[number], value))
    return found


def external_data(path: str | os.PathLike[str]) -> list[ExternalData]:
    """Every external data reference in the ONNX file at ``path`` (unchecked), in no particular order.

    Raises:
        FrptError: the file cannot be read or is not a protobuf message.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                raise FrptError(f"{path} is empty, not an ONNX model: export it again")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                view = memoryview(data)
                try:
                    return _walk(view)
                except _Malformed:
                    raise FrptError(
                        f"{path} is not a readable ONNX file (malformed protobuf): export it again"
                    ) from None
                finally:
                    view.release()
    except OSError as exc:
        raise FrptError(f"cannot read {path} ({type(exc).__name__}: {exc.strerror})") from None


def _check_one(path: Path, folder: str, item: ExternalData) -> str:
    """The resolved file of one reference, or FrptError naming what is wrong with it."""
    where = f"{path}: external data {item.location!r} of tensor {item.tensor!r}"
    pure = PurePosixPath(item.location)
    if not item.location or "\\" in item.location or pure.is_absolute():
        raise FrptError(f"{where} is not a relative POSIX path: {_FIX}")
    if ".." in pure.parts:
        raise FrptError(f"{where} climbs out of the model's folder: {_FIX}")
    resolved = os.path.realpath(os.path.join(folder, *pure.parts))
    if not resolved.startswith(folder.rstrip(os.sep) + os.sep):
        raise FrptError(f"{where} resolves outside the model's folder (to {resolved}): {_FIX}")
    try:
        info = os.stat(resolved)
    except OSError:
        raise FrptError(f"{where} is missing: {_FIX}") from None
    if not stat.S_ISREG(info.st_mode):
        raise FrptError(f"{where} is not a regular file: {_FIX}")
    try:
        offset, length = int(item.offset or 0), int(item.length or 0)
    except ValueError:
        raise FrptError(f"{where} has a non-numeric offset or length: {_FIX}") from None
    if offset < 0 or length < 0 or offset + length > info.st_size:
        raise FrptError(f"{where} asks for bytes {offset}..{offset + length} of a {info.st_size}-byte file: {_FIX}")
    return resolved


def check_external_data(path: str | os.PathLike[str]) -> list[str]:
    """Check every external data reference of the ONNX file at ``path``; return their distinct locations, sorted.

    Raises:
        FrptError: an unreadable model, or a location that is absolute, climbs out with ``..``, resolves outside
            the model's folder, is missing or not a regular file, or is shorter than ``offset + length``.
    """
    path = Path(path)
    folder = os.path.realpath(path.parent)
    references = external_data(path)
    for item in references:
        _check_one(path, folder, item)
    return sorted({item.location for item in references})


def model_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 naming every byte a backend runs: the ``.onnx`` file and its (checked) external data.

    Without external data this is the plain SHA-256 of the file. With it, one SHA-256 over the ``.onnx`` bytes,
    then for each distinct location in sorted order: its UTF-8 length (8 bytes, big-endian), the location, the
    file's length (8 bytes, big-endian) and the file's bytes.

    Raises:
        FrptError: as :func:`check_external_data`.
    """
    path = Path(path)
    locations = check_external_data(path)
    if not locations:
        return sha256_file(path)
    digest = hashlib.sha256()
    _update_from_file(digest, path)
    for location in locations:
        name = location.encode("utf-8")
        target = path.parent / location
        digest.update(len(name).to_bytes(8, "big") + name + target.stat().st_size.to_bytes(8, "big"))
        _update_from_file(digest, target)
    return digest.hexdigest()


def _update_from_file(digest: Any, path: Path) -> None:
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
