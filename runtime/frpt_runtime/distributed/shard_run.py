"""One sharded run on disk: its state under ``frpt-embed``'s resume rules, its shard files, its unmerged manifest.

:func:`open_shards` applies ``frpt-embed``'s own rules (:mod:`frpt_runtime.embed_run`: its fingerprint, its refusal
of a finished run of another job, its refusal of files changed since a finished chunk listed them) to the shard
state of :mod:`~frpt_runtime.distributed.shard_files`, and finds the shards that are finished; :class:`ShardRun`
reads and writes them; :func:`write_unmerged` finishes a ``--no-merge`` run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frpt_runtime.atomic import atomic_write_json
from frpt_runtime.digests import sha256_file
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
from frpt_runtime.embed_run import (
    EmbedRun,
    all_skipped,
    fingerprint,
    refuse_changed_files,
    refuse_foreign_finished_run,
    run_manifest,
    run_timings,
)
from frpt_runtime.errors import FrptError
from frpt_runtime.image_files import ImageFile
from frpt_runtime.journal import PARTIAL_DIR, ChunkRecord
from frpt_runtime.journal import STATE_FILE as PARTIAL_STATE_FILE
from frpt_runtime.manifest import EMBEDDINGS_FILE, MANIFEST_FILE, RUN_FILE

__all__ = ["ShardRun", "open_shards", "write_unmerged"]


@dataclass
class ShardRun:
    """One run's shards: where they are, what each must hold, which are finished.

    Attributes:
        run: the run (its scan, model, ``OUT``, batch).
        layout: its chunks and shards.
        state_sha256: digest of the run's ``state.json`` content (every shard file carries it).
        done: shards whose file is written and verified.
    """

    run: EmbedRun
    layout: ShardLayout
    state_sha256: str
    done: set[int] = field(default_factory=set)

    @property
    def folder(self) -> Path:
        return self.run.out / SHARDS_DIR

    def path(self, shard: int) -> Path:
        return self.folder / self.layout.file_name(shard)

    def files(self, shard: int) -> list[ImageFile]:
        span = self.layout.files(shard)
        return self.run.scan.files[span.start : span.stop]

    def meta(self, shard: int) -> dict[str, Any]:
        """The facts shard ``shard``'s file carries (and must carry to be used)."""
        return {
            "format": SHARD_FORMAT,
            "shard": shard,
            "first": self.layout.files(shard).start,
            "files": len(self.layout.files(shard)),
            "dim": self.run.info.embedding_dim,
            "state_sha256": self.state_sha256,
        }

    def read(self, shard: int) -> list[ShardChunk]:
        """Shard ``shard``'s chunks, verified (raises :class:`~.shard_files.ShardUnusable`)."""
        names = [item.rel for item in self.files(shard)]
        return read_shard(self.path(shard), self.meta(shard), names, self.layout.batch)

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
        write_shard(self.path(shard), self.meta(shard), self.files(shard), chunks, self.run.info.embedding_dim)
        self.done.add(shard)

    def chunk(self, row: dict[str, Any]) -> ShardChunk:
        """An embedded chunk's output row (see :mod:`~.stages`) as a :class:`ShardChunk` named as the manifest does."""
        span = self.layout.chunk_files(row["chunk"])
        files = self.run.scan.files[span.start : span.stop]
        reasons: dict[int, str] = dict(json.loads(row["skipped"]))
        paths = [item.rel for offset, item in enumerate(files) if offset not in reasons]
        rows = np.frombuffer(row["embedding"], "<f4").reshape(row["rows"], self.run.info.embedding_dim)
        if rows.shape[0] != len(paths):
            raise FrptError(f"chunk {row['chunk']} came back with {rows.shape[0]} rows for {len(paths)} images")
        skipped = [(files[offset].rel, reason) for offset, reason in sorted(reasons.items())]
        stats = [(item.size, item.mtime_ns) for item in files]
        return ShardChunk(ChunkRecord(row["chunk"], paths, skipped, stats), rows.astype(np.float32))


def open_shards(run: EmbedRun, layout: ShardLayout, resume: bool) -> ShardRun:
    """Start (or with ``resume`` continue) the shards of ``run``; the finished ones are those that verify.

    Call it holding ``run.out``'s lock.

    Raises:
        FrptError: what ``frpt-embed --resume`` refuses: the shards of another run (another file list, model, batch
            or shard size), a finished run of another job in ``OUT``, a file of a finished shard that changed since
            it was listed; and a partial single-box run there.
    """
    out = run.out
    if resume and not (out / SHARDS_DIR / STATE_FILE).is_file():
        if (out / PARTIAL_DIR / PARTIAL_STATE_FILE).is_file():
            raise FrptError(
                f"--resume: {out} holds a partial run of frpt-embed without --ray: resume it without --ray, "
                "or drop --resume to start over"
            )
        if (out / MANIFEST_FILE).exists():
            refuse_foreign_finished_run(run)
    state = {**fingerprint(run), "shard_files": layout.files_per_shard}
    shards = ShardRun(run, layout, open_state(out / SHARDS_DIR, state, resume))
    finished: list[ChunkRecord] = []
    for shard in range(layout.count):
        try:
            finished += [chunk.record for chunk in shards.read(shard)]
        except ShardUnusable:
            continue
        shards.done.add(shard)
    refuse_changed_files(run, finished)
    return shards


def write_unmerged(
    shards: ShardRun, records: list[ChunkRecord], started: float, resumed: int, extra: dict[str, Any]
) -> tuple[list[tuple[str, str]], float]:
    """Finish a ``--no-merge`` run: ``run.json``, then ``manifest.json`` listing the shards (written last).

    The manifest is ``frpt-embed``'s (:func:`~frpt_runtime.embed_run.run_manifest`) without the per-image lists,
    which live in the shards; see :mod:`~.shard_files` for its fields. A stale ``embeddings.npy`` of an earlier
    merged run in ``OUT`` is removed first.

    Returns:
        ``(skipped, wall_s)`` as :func:`frpt_runtime.embed_run.commit` does.
    """
    run, layout = shards.run, shards.layout
    skipped = all_skipped(run, records)
    entries = []
    for shard in range(layout.count):
        mine = [record for record in records if layout.shard_of(record.chunk) == shard]
        entries.append(
            {
                "file": f"{SHARDS_DIR}/{layout.file_name(shard)}",
                "sha256": sha256_file(shards.path(shard)),
                "images": sum(len(record.paths) for record in mine),
                "skipped": sum(len(record.skipped) for record in mine),
            }
        )
    manifest = run_manifest(run, [], [])
    del manifest["images"], manifest["skipped"]
    manifest.update(
        format=SHARDED_MANIFEST_FORMAT,
        count=sum(entry["images"] for entry in entries),
        skipped_count=len(skipped),
        scan_skipped=[{"path": path, "reason": reason} for path, reason in run.scan.skipped],
        shard_files=layout.files_per_shard,
        shards=entries,
    )
    (run.out / EMBEDDINGS_FILE).unlink(missing_ok=True)
    wall = time.perf_counter() - started
    atomic_write_json(run.out / RUN_FILE, run_timings(run, wall, resumed, extra))
    atomic_write_json(run.out / MANIFEST_FILE, manifest)
    return skipped, wall
