"""The files of a sharded run: one Parquet file per finished shard, the run's state, the sharded manifest.

``OUT/shards/`` holds, while a ``--ray`` run is under way (and after it with ``--no-merge``):

* ``state.json`` — the run's fingerprint (``frpt-embed``'s own: file list hash, model sha256, backend, batch, ...)
  plus the shard size; a ``--resume`` with anything different is refused;
* ``shard-NNNNNN.parquet`` — one per finished shard, written atomically (temp file, fsync, rename): one row per file
  of the shard, in list order, with columns ``path`` (string, relative POSIX path), ``embedding``
  (``fixed_size_list<float32>[D]``, null for a skipped file) and ``skipped`` (string: the skip reason, null for an
  embedded file); page checksums on; the schema metadata ``frpt`` holds the shard's facts (format, shard number,
  first file, file count, ``D``, the sha256 of ``state.json``'s content). A shard file is used only if it reads back
  whole and every one of those facts matches (:func:`read_shard`); otherwise the shard is embedded again.

``--no-merge`` leaves the shards in place and writes ``OUT/manifest.json`` in the sharded format
(:data:`SHARDED_MANIFEST_FORMAT`): ``frpt-embed``'s manifest facts without the per-image lists, plus ``shards``
(file, sha256, embedded and skipped counts per shard); :func:`read_sharded_rows` is its checked reader.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from frpt_runtime.atomic import atomic_write, atomic_write_json, json_bytes
from frpt_runtime.engine_sidecar import sha256_file
from frpt_runtime.errors import FrptError
from frpt_runtime.manifest import MANIFEST_FILE, ChunkRecord

__all__ = [
    "SHARDED_MANIFEST_FORMAT",
    "SHARDS_DIR",
    "SHARD_FORMAT",
    "STATE_FILE",
    "ShardChunk",
    "ShardUnusable",
    "open_state",
    "read_shard",
    "read_sharded_rows",
    "write_shard",
]

SHARDS_DIR = "shards"
STATE_FILE = "state.json"
SHARD_FORMAT = "frpt-embed-shard/1"
SHARDED_MANIFEST_FORMAT = "frpt-embeddings-shards/1"
_META_KEY = b"frpt"


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
    shard files (a resume with none there starts fresh).

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
            differ = sorted(k for k in state if not isinstance(saved, dict) or saved.get(k) != state[k])
            raise FrptError(
                f"shards in {folder} are for a different run (differs in: {', '.join(differ) or 'format'}): "
                "drop --resume to start over"
            )
    else:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        atomic_write_json(path, state)
    return hashlib.sha256(json_bytes(state)).hexdigest()


def write_shard(path: Path, meta: dict[str, Any], files: list[str], chunks: list[ShardChunk], dim: int) -> None:
    """Write one finished shard atomically.

    Args:
        path: the shard file.
        meta: the shard's facts (stored in the schema metadata; :func:`read_shard` compares them).
        files: the shard's files in list order (relative POSIX paths).
        chunks: the shard's chunks in order, covering ``files`` exactly.
        dim: ``D``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    reasons = {name: why for chunk in chunks for name, why in chunk.record.skipped}
    embedded = [name for chunk in chunks for name in chunk.record.paths]
    if [name for name in files if name not in reasons] != embedded:
        raise ValueError(f"the chunks of {path.name} do not cover its files in order")
    skipped = np.array([name in reasons for name in files], bool)
    rows = np.zeros((len(files), dim), "<f4")
    if embedded:
        rows[~skipped] = np.concatenate([chunk.rows for chunk in chunks])
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), dim, mask=pa.array(skipped))
    table = pa.table(
        {
            "path": pa.array(files, pa.string()),
            "embedding": embedding,
            "skipped": pa.array([reasons.get(name) for name in files], pa.string()),
        }
    ).replace_schema_metadata({_META_KEY: json.dumps(meta, sort_keys=True)})
    atomic_write(path, lambda handle: pq.write_table(table, handle, write_page_checksum=True))


def read_shard(path: Path, meta: dict[str, Any], files: list[str], batch: int) -> list[ShardChunk]:
    """Read one shard back as its chunks, checking it is the shard ``meta`` and ``files`` describe.

    Args:
        path: the shard file.
        meta: the facts it must carry (as given to :func:`write_shard`; ``meta["first"]`` is a chunk boundary).
        files: the files it must hold, in order.
        batch: files per chunk.

    Raises:
        ShardUnusable: missing, unreadable or truncated, or written for another run, shard or file list.
    """
    found, names, rows, embedded, reasons = _read_table(path, meta.get("dim"))
    if found != meta:
        raise ShardUnusable(f"{path.name} was written for another run or shard")
    if names != files:
        raise ShardUnusable(f"{path.name} holds other files than its shard")
    chunks, row = [], 0
    for start in range(0, len(files), batch):
        span = range(start, min(start + batch, len(files)))
        paths = [files[i] for i in span if embedded[i]]
        skipped = [(files[i], reasons[i]) for i in span if not embedded[i]]
        record = ChunkRecord((meta["first"] + start) // batch, paths, skipped)
        chunks.append(ShardChunk(record, rows[row : row + len(paths)]))
        row += len(paths)
    return chunks


def _read_table(path: Path, dim: object) -> tuple[dict[str, Any], list[str], np.ndarray, list[bool], list[str]]:
    """``(meta, paths, rows of the embedded files [m, D], embedded flag per file, reason per file)`` of a shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with open(path, "rb") as handle:
            table = pq.ParquetFile(handle, page_checksum_verification=True).read()
        meta = json.loads(table.schema.metadata[_META_KEY])
    except (OSError, ValueError, KeyError, TypeError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ShardUnusable(f"{path.name} is missing or unreadable ({type(exc).__name__})") from None
    if not isinstance(dim, int) or table.schema.names != ["path", "embedding", "skipped"]:
        raise ShardUnusable(f"{path.name} is not an {SHARD_FORMAT} file")
    column = table.column("embedding").combine_chunks()
    kind = column.type
    if not pa.types.is_fixed_size_list(kind) or kind.list_size != dim or kind.value_type != pa.float32():
        raise ShardUnusable(f"{path.name} holds {column.type}, not float32 rows of D={dim}")
    embedded = column.is_valid().to_pylist()
    reasons = table.column("skipped").to_pylist()
    if any(flag == (reason is not None) for flag, reason in zip(embedded, reasons, strict=True)):
        raise ShardUnusable(f"{path.name} has rows that are both or neither embedded and skipped")
    rows = column.filter(column.is_valid()).flatten().to_numpy().reshape(-1, dim).astype(np.float32, copy=False)
    return meta, table.column("path").to_pylist(), rows, embedded, reasons


def read_sharded_rows(out: Path, manifest: dict[str, Any]) -> tuple[list[str], np.ndarray]:
    """The embedded files (in row order) and float32 ``[M, D]`` rows of a ``--no-merge`` output, checked.

    Args:
        out: the output folder.
        manifest: its ``manifest.json`` (format :data:`SHARDED_MANIFEST_FORMAT`).

    Raises:
        FrptError: a shard that is missing, altered (sha256), unreadable, or disagrees with the manifest's counts.
    """
    dim, entries = manifest.get("embedding_dim"), manifest.get("shards")
    if not isinstance(entries, list) or not isinstance(dim, int):
        raise FrptError(f"{out / MANIFEST_FILE} lacks shards / embedding_dim: re-run frpt-embed --ray to rewrite it")
    images: list[str] = []
    parts: list[np.ndarray] = []
    for entry in entries:
        name = PurePosixPath(str(entry.get("file") if isinstance(entry, dict) else ""))
        path = out / SHARDS_DIR / name.name
        if name.parts != (SHARDS_DIR, name.name) or not path.is_file() or sha256_file(path) != entry.get("sha256"):
            raise FrptError(f"shard {name} of {out} is missing or altered: re-run frpt-embed --ray --resume")
        try:
            _, paths, rows, embedded, _ = _read_table(path, dim)
        except ShardUnusable as exc:
            raise FrptError(f"{exc}: re-run frpt-embed --ray --resume in {out}") from None
        images += [file for file, flag in zip(paths, embedded, strict=True) if flag]
        parts.append(rows)
        if rows.shape[0] != entry.get("images"):
            raise FrptError(f"shard {name} holds {rows.shape[0]} rows but the manifest says {entry.get('images')}")
    if len(images) != manifest.get("count"):
        raise FrptError(f"the shards of {out} hold {len(images)} rows but the manifest says {manifest.get('count')}")
    rows = np.concatenate(parts) if parts else np.empty((0, dim), np.float32)
    if not np.isfinite(rows).all():
        raise FrptError(f"the shards of {out} hold NaN or Inf rows: re-run frpt-embed (and frpt-verify the model)")
    return images, rows
