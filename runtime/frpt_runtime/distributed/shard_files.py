"""The files of a sharded run: one Parquet file per finished shard, the run's state, the sharded manifest.

``OUT/shards/`` holds, while a ``--ray`` run is under way (and after it with ``--no-merge``):

* ``state.json`` — the run's fingerprint (``frpt-embed``'s own, :func:`frpt_runtime.embed_run.fingerprint`: file
  list hash, model sha256, backend, batch, symlink policy, ...) plus the shard size; a ``--resume`` with anything
  different is refused;
* ``shard-NNNNNN.parquet`` — one per finished shard, written atomically (temp file, fsync, rename): one row per file
  of the shard, in list order, with columns ``path`` (binary: the name relative to the root, POSIX separators, as
  the bytes the OS gave — UTF-8 for UTF-8 names; a non-UTF-8 name keeps its bytes, so it round-trips through
  PEP 383 surrogateescape), ``size`` and ``mtime_ns`` (int64, the file's stat when the run listed it: what a
  resume compares), ``embedding`` (``fixed_size_list<float32>[D]``, null for a skipped file) and ``skipped``
  (binary UTF-8 reason, null for an embedded file); page checksums on; the schema metadata ``frpt`` holds the
  shard's facts (format, shard number, first file, file count, ``D``, the sha256 of ``state.json``'s content). A
  shard file is used only if it reads back whole and every one of those facts matches (:func:`read_shard`);
  otherwise the shard is embedded again.

``--no-merge`` leaves the shards in place and writes ``OUT/manifest.json`` in the sharded format
(:data:`SHARDED_MANIFEST_FORMAT`): ``frpt-embed``'s manifest fields without the per-image lists and without
``embeddings_sha256``, plus ``shards`` (file, sha256, embedded and skipped counts per shard), ``skipped_count``
(every path not embedded) and ``scan_skipped`` (the paths the listing skipped — folders, symlinks, non-regular
files — which belong to no shard). :func:`read_sharded_output` is its checked reader.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from frpt_runtime.atomic import atomic_write, atomic_write_json, fsync_dir, json_bytes, remove_stale_temps
from frpt_runtime.digests import sha256_file
from frpt_runtime.errors import FrptError
from frpt_runtime.fields import hex_digest, integer, read_fields, record, sequence, string
from frpt_runtime.image_files import ImageFile
from frpt_runtime.journal import RESTART, ChunkRecord, state_differences
from frpt_runtime.manifest import MANIFEST_FILE, MANIFEST_SPEC

__all__ = [
    "SHARDED_MANIFEST_FORMAT",
    "SHARDS_DIR",
    "SHARD_FORMAT",
    "STATE_FILE",
    "ShardChunk",
    "ShardUnusable",
    "discard_shards",
    "is_sharded_output",
    "open_state",
    "read_shard",
    "read_sharded_output",
    "write_shard",
]

SHARDS_DIR = "shards"
STATE_FILE = "state.json"
SHARD_FORMAT = "frpt-embed-shard/1"
SHARDED_MANIFEST_FORMAT = "frpt-embeddings-shards/1"
_META_KEY = b"frpt"
_COLUMNS = ["path", "size", "mtime_ns", "embedding", "skipped"]
_RERUN = "re-run frpt-embed --ray --resume to rewrite it"

SHARDED_MANIFEST_SPEC = {
    **{name: check for name, check in MANIFEST_SPEC.items() if name not in ("images", "skipped", "embeddings_sha256")},
    "skipped_count": integer(0),
    "scan_skipped": sequence(record({"path": string(), "reason": string()})),
    "shard_files": integer(1),
    "shards": sequence(record({"file": string(), "sha256": hex_digest(), "images": integer(0), "skipped": integer(0)})),
}


def _to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _to_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


@dataclass
class ShardChunk:
    """One chunk of a shard: its files (as ``frpt-embed`` journals them) and its rows, float32 ``[n, D]``."""

    record: ChunkRecord
    rows: np.ndarray


class ShardUnusable(Exception):
    """A shard file that does not read back or does not match the run: the shard is embedded again."""


def open_state(folder: Path, state: dict[str, Any], resume: bool) -> str:
    """Start (or, with ``resume``, continue) the shards of a run in ``folder``; return the sha256 of ``state``.

    A fresh start removes ``folder`` and writes ``state.json``; a resume over a matching ``state.json`` keeps the
    shard files and removes the temp files of killed writes (a resume with no state there starts fresh). Call it
    holding ``OUT``'s lock.

    Raises:
        FrptError: ``resume`` over the shards of a different run.
    """
    path = folder / STATE_FILE
    if resume and path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = None
        if saved != state:
            differ = state_differences(saved, state)
            raise FrptError(f"shards in {folder} are for a different run (differs in: {differ}): {RESTART}")
        remove_stale_temps(path)
        for stale in folder.glob(".shard-*.parquet.*.tmp"):
            stale.unlink(missing_ok=True)
    else:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        atomic_write_json(path, state)
    return hashlib.sha256(json_bytes(state)).hexdigest()


def discard_shards(folder: Path) -> None:
    """Remove the shards after a merge: ``state.json`` first, so a crash midway never leaves a resumable half."""
    (folder / STATE_FILE).unlink(missing_ok=True)
    fsync_dir(folder)
    shutil.rmtree(folder, ignore_errors=True)


def write_shard(path: Path, meta: dict[str, Any], files: list[ImageFile], chunks: list[ShardChunk], dim: int) -> None:
    """Write one finished shard atomically.

    Args:
        path: the shard file.
        meta: the shard's facts (stored in the schema metadata; :func:`read_shard` compares them).
        files: the shard's files in list order, with their stats from the run's listing.
        chunks: the shard's chunks in order, covering ``files`` exactly.
        dim: ``D``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [item.rel for item in files]
    reasons = {name: why for chunk in chunks for name, why in chunk.record.skipped}
    embedded = [name for chunk in chunks for name in chunk.record.paths]
    if [name for name in names if name not in reasons] != embedded:
        raise ValueError(f"the chunks of {path.name} do not cover its files in order")
    skipped = np.array([name in reasons for name in names], bool)
    rows = np.zeros((len(names), dim), "<f4")
    if embedded:
        rows[~skipped] = np.concatenate([chunk.rows for chunk in chunks])
    columns = {
        "path": pa.array([_to_bytes(name) for name in names], pa.binary()),
        "size": pa.array([item.size for item in files], pa.int64()),
        "mtime_ns": pa.array([item.mtime_ns for item in files], pa.int64()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), dim, mask=pa.array(skipped)),
        "skipped": pa.array([_to_bytes(reasons[n]) if n in reasons else None for n in names], pa.binary()),
    }
    table = pa.table(columns).replace_schema_metadata({_META_KEY: json.dumps(meta, sort_keys=True)})
    atomic_write(path, lambda handle: pq.write_table(table, handle, write_page_checksum=True))


def read_shard(path: Path, meta: dict[str, Any], names: list[str], batch: int) -> list[ShardChunk]:
    """Read one shard back as its chunks (with the stats its files had when listed), checking it is the shard
    ``meta`` and ``names`` describe.

    Args:
        path: the shard file.
        meta: the facts it must carry (as given to :func:`write_shard`; ``meta["first"]`` is a chunk boundary).
        names: the files it must hold, in order.
        batch: files per chunk.

    Raises:
        ShardUnusable: missing, unreadable or truncated, or written for another run, shard or file list.
    """
    table = _read_table(path, meta.get("dim"))
    if table["meta"] != meta:
        raise ShardUnusable(f"{path.name} was written for another run or shard")
    if table["names"] != names:
        raise ShardUnusable(f"{path.name} holds other files than its shard")
    embedded, reasons, stats = table["embedded"], table["reasons"], table["stats"]
    chunks, row = [], 0
    for start in range(0, len(names), batch):
        span = range(start, min(start + batch, len(names)))
        paths = [names[i] for i in span if embedded[i]]
        skipped = [(names[i], reasons[i]) for i in span if not embedded[i]]
        record = ChunkRecord((meta["first"] + start) // batch, paths, skipped, [stats[i] for i in span])
        chunks.append(ShardChunk(record, table["rows"][row : row + len(paths)]))
        row += len(paths)
    return chunks


def _read_table(path: Path, dim: object) -> dict[str, Any]:
    """A shard's ``meta``, ``names``, ``stats``, ``rows`` (float32 ``[m, D]`` of the embedded files), ``embedded``
    flag and ``reasons`` (``None`` for embedded files) per file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with open(path, "rb") as handle:
            table = pq.ParquetFile(handle, page_checksum_verification=True).read()
        meta = json.loads(table.schema.metadata[_META_KEY])
    except (OSError, ValueError, KeyError, TypeError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ShardUnusable(f"{path.name} is missing or unreadable ({type(exc).__name__})") from None
    kinds = {name: table.schema.field(name).type for name in table.schema.names}
    wanted = {"path": pa.binary(), "size": pa.int64(), "mtime_ns": pa.int64(), "skipped": pa.binary()}
    if not isinstance(dim, int) or table.schema.names != _COLUMNS or any(kinds[k] != v for k, v in wanted.items()):
        raise ShardUnusable(f"{path.name} is not an {SHARD_FORMAT} file")
    column = table.column("embedding").combine_chunks()
    kind = column.type
    if not pa.types.is_fixed_size_list(kind) or kind.list_size != dim or kind.value_type != pa.float32():
        raise ShardUnusable(f"{path.name} holds {column.type}, not float32 rows of D={dim}")
    embedded = column.is_valid().to_pylist()
    reasons = [None if item is None else _to_text(item) for item in table.column("skipped").to_pylist()]
    if any(flag == (reason is not None) for flag, reason in zip(embedded, reasons, strict=True)):
        raise ShardUnusable(f"{path.name} has rows that are both or neither embedded and skipped")
    rows = column.filter(column.is_valid()).flatten().to_numpy().reshape(-1, dim).astype(np.float32, copy=False)
    sizes, mtimes = table.column("size").to_pylist(), table.column("mtime_ns").to_pylist()
    return {
        "meta": meta,
        "names": [_to_text(item) for item in table.column("path").to_pylist()],
        "stats": list(zip(sizes, mtimes, strict=True)),
        "rows": rows,
        "embedded": embedded,
        "reasons": reasons,
    }


def is_sharded_output(out: Path) -> bool:
    """Whether ``OUT/manifest.json`` is a ``--no-merge`` manifest (an unreadable one is not: its reader says why)."""
    try:
        data = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == SHARDED_MANIFEST_FORMAT


def read_sharded_output(out: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The checked reader of a ``--no-merge`` output: ``(rows, manifest)`` as :func:`~frpt_runtime.manifest.
    read_embeddings` gives them for a merged one (``manifest["images"]`` filled in from the shards).

    Raises:
        FrptError: a malformed manifest; a shard that is missing, altered (sha256), unreadable, or disagrees with
            the manifest's counts; NaN or Inf rows.
    """
    path = out / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FrptError(f"cannot read {path} ({type(exc).__name__}): {_RERUN}") from None
    read_fields(manifest, SHARDED_MANIFEST_SPEC, str(path), _RERUN)
    images: list[str] = []
    parts: list[np.ndarray] = []
    for entry in manifest["shards"]:
        name = PurePosixPath(entry["file"])
        shard = out / SHARDS_DIR / name.name
        if name.parts != (SHARDS_DIR, name.name) or not shard.is_file() or sha256_file(shard) != entry["sha256"]:
            raise FrptError(f"shard {name} of {out} is missing or altered: {_RERUN}")
        try:
            table = _read_table(shard, manifest["embedding_dim"])
        except ShardUnusable as exc:
            raise FrptError(f"{exc}: {_RERUN}") from None
        if table["rows"].shape[0] != entry["images"]:
            raise FrptError(f"shard {name} holds {table['rows'].shape[0]} rows, the manifest says {entry['images']}")
        images += [file for file, flag in zip(table["names"], table["embedded"], strict=True) if flag]
        parts.append(table["rows"])
    if len(images) != manifest["count"]:
        raise FrptError(f"the shards of {out} hold {len(images)} rows but the manifest says {manifest['count']}")
    rows = np.concatenate(parts) if parts else np.empty((0, manifest["embedding_dim"]), np.float32)
    if not np.isfinite(rows).all():
        raise FrptError(f"the shards of {out} hold NaN or Inf rows: the model produced them; check it with frpt-verify")
    return rows, {**manifest, "images": images}
