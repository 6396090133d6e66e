"""One sharded run on disk: its state under ``frpt-embed``'s resume rules, its shard files, its unmerged manifest.

:func:`open_shards` applies ``frpt-embed``'s own rules (its fingerprint, its refusal of a finished run of another
job) to the shard state of :mod:`~frpt_runtime.distributed.shard_files`, and finds the shards that are finished;
:class:`ShardRun` reads and writes them; :func:`write_unmerged` finishes a ``--no-merge`` run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frpt_runtime.atomic import atomic_write_json
from frpt_runtime.backends.base import ModelInfo
from frpt_runtime.distributed.layout import ShardLayout
from frpt_runtime.distributed.shard_files import (
    SHARD_FORMAT,
    SHARDED_MANIFEST_FORMAT,
    SHARDS_DIR,
    STATE_FILE,
    ShardChunk,
    ShardUnusable,
    open_state,
    read_shard,
    write_shard,
)
from frpt_runtime.embed import _fingerprint as frpt_embed_fingerprint
from frpt_runtime.embed import _manifest as frpt_embed_manifest
from frpt_runtime.embed import _refuse_foreign_finished_run as refuse_foreign_finished_run
from frpt_runtime.engine_sidecar import sha256_file
from frpt_runtime.errors import FrptError
from frpt_runtime.manifest import EMBEDDINGS_FILE, MANIFEST_FILE, PARTIAL_DIR, RUN_FILE, ChunkRecord

__all__ = ["ShardRun", "open_shards", "write_unmerged"]


@dataclass
class ShardRun:
    """One run's shards: where they are, what each must hold, which are finished.

    Attributes:
        out, root: the output folder and the image folder.
        rel: every file of the run, relative POSIX paths in list order.
        info: the model (as probed on a worker).
        layout: the run's chunks and shards.
        state_sha256: digest of the run's ``state.json`` content (every shard file carries it).
        done: shards whose file is written and verified.
    """

    out: Path
    root: Path
    rel: list[str]
    info: ModelInfo
    layout: ShardLayout
    state_sha256: str
    done: set[int] = field(default_factory=set)

    @property
    def folder(self) -> Path:
        return self.out / SHARDS_DIR

    def path(self, shard: int) -> Path:
        return self.folder / self.layout.file_name(shard)

    def files(self, shard: int) -> list[str]:
        span = self.layout.files(shard)
        return self.rel[span.start : span.stop]

    def meta(self, shard: int) -> dict[str, Any]:
        """The facts shard ``shard``'s file carries (and must carry to be used)."""
        return {
            "format": SHARD_FORMAT,
            "shard": shard,
            "first": self.layout.files(shard).start,
            "files": len(self.layout.files(shard)),
            "dim": self.info.embedding_dim,
            "state_sha256": self.state_sha256,
        }

    def read(self, shard: int) -> list[ShardChunk]:
        """Shard ``shard``'s chunks, verified (raises :class:`~.shard_files.ShardUnusable`)."""
        return read_shard(self.path(shard), self.meta(shard), self.files(shard), self.layout.batch)

    def all_chunks(self) -> list[ShardChunk]:
        """Every chunk of the run in order, read back from the shard files.

        Raises:
            FrptError: a shard file that no longer verifies (changed on disk since it was written).
        """
        try:
            return [chunk for shard in range(self.layout.count) for chunk in self.read(shard)]
        except ShardUnusable as exc:
            raise FrptError(f"{exc} (changed on disk during the run): rerun with --resume") from None

    def write(self, shard: int, chunks: list[ShardChunk]) -> None:
        """Write shard ``shard`` atomically and mark it done."""
        write_shard(self.path(shard), self.meta(shard), self.files(shard), chunks, self.info.embedding_dim)
        self.done.add(shard)

    def chunk(self, row: dict[str, Any]) -> ShardChunk:
        """An embedded chunk's output row (see :mod:`~.stages`) as a :class:`ShardChunk` named as the manifest does."""
        span = self.layout.chunk_files(row["chunk"])
        names = self.rel[span.start : span.stop]
        reasons: dict[int, str] = dict(json.loads(row["skipped"]))
        paths = [name for offset, name in enumerate(names) if offset not in reasons]
        rows = np.frombuffer(row["embedding"], "<f4").reshape(row["rows"], self.info.embedding_dim)
        if rows.shape[0] != len(paths):
            raise FrptError(f"chunk {row['chunk']} came back with {rows.shape[0]} rows for {len(paths)} images")
        skipped = [(names[offset], reason) for offset, reason in sorted(reasons.items())]
        return ShardChunk(ChunkRecord(row["chunk"], paths, skipped), rows.astype(np.float32))


def open_shards(out: Path, root: Path, rel: list[str], info: ModelInfo, layout: ShardLayout, resume: bool) -> ShardRun:
    """Start (or with ``resume`` continue) the shards of a run in ``out``; the finished ones are those that verify.

    Raises:
        FrptError: what ``frpt-embed --resume`` refuses: the shards of another run (another file list, model, batch
            or shard size), a finished run of another job in ``out``; and a partial single-box run there.
    """
    if resume and not (out / SHARDS_DIR / STATE_FILE).is_file():
        if (out / PARTIAL_DIR / "state.json").is_file():
            raise FrptError(
                f"--resume: {out} holds a partial run of frpt-embed without --ray: resume it without --ray, "
                "or drop --resume to start over"
            )
        if (out / MANIFEST_FILE).exists():
            refuse_foreign_finished_run(out, root, rel, info, layout.batch)
    out.mkdir(parents=True, exist_ok=True)
    state = {**frpt_embed_fingerprint(root, rel, info, layout.batch), "shard_files": layout.files_per_shard}
    run = ShardRun(out, root, rel, info, layout, open_state(out / SHARDS_DIR, state, resume))
    for shard in range(layout.count):
        try:
            run.read(shard)
        except ShardUnusable:
            continue
        run.done.add(shard)
    return run


def write_unmerged(
    run: ShardRun, records: list[ChunkRecord], started: float, resumed: int, timings: dict[str, Any]
) -> tuple[list[tuple[str, str]], float]:
    """Finish a ``--no-merge`` run: ``run.json``, then ``manifest.json`` listing the shards (written last).

    The manifest holds ``frpt-embed``'s facts about the run (root, model, backend, config, batch, ...) without the
    per-image lists, which live in the shards; ``format`` is :data:`~.shard_files.SHARDED_MANIFEST_FORMAT`. A stale
    ``embeddings.npy`` of an earlier merged run in ``OUT`` is removed.

    Returns:
        ``(skipped, wall_s)`` as :func:`frpt_runtime.embed.write_outputs` does.
    """
    layout = run.layout
    skipped = [item for record in records for item in record.skipped]
    shards = []
    for shard in range(layout.count):
        mine = [record for record in records if layout.shard_of(record.chunk) == shard]
        shards.append(
            {
                "file": f"{SHARDS_DIR}/{layout.file_name(shard)}",
                "sha256": sha256_file(run.path(shard)),
                "images": sum(len(record.paths) for record in mine),
                "skipped": sum(len(record.skipped) for record in mine),
            }
        )
    manifest = frpt_embed_manifest(run.root, run.info, layout.batch, [], [])
    del manifest["images"], manifest["skipped"]
    count = sum(entry["images"] for entry in shards)
    manifest.update(
        format=SHARDED_MANIFEST_FORMAT, count=count, skipped_count=len(skipped), shard_files=layout.files_per_shard
    )
    manifest["shards"] = shards
    wall = time.perf_counter() - started
    processed = layout.total - resumed
    atomic_write_json(
        run.out / RUN_FILE,
        {
            "wall_s": round(wall, 4),
            "images_per_s": round(processed / wall, 2),
            "images_processed": processed,
            "resumed_images": resumed,
            "batch": layout.batch,
            **timings,
            "finished_unix": round(time.time(), 3),
        },
    )
    atomic_write_json(run.out / MANIFEST_FILE, manifest)
    (run.out / EMBEDDINGS_FILE).unlink(missing_ok=True)
    return skipped, wall
