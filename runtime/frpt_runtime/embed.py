"""Embed an image folder with any backend: ``embed_folder(...) -> EmbedReport`` (library behind ``frpt-embed``).

Flow: scan the folder (:func:`~frpt_runtime.image_files.scan_images`: recursive, sorted, every candidate not
embedded listed with its reason) -> refuse an empty folder or a batch the model cannot take, before any work ->
lock ``OUT`` for the whole run (:class:`~frpt_runtime.out_lock.OutputLock`) and remove temp files a killed run
left -> decode ahead in a worker pool (:class:`~frpt_runtime.pipeline.BatchPipeline`) -> keep up to
``backend.max_in_flight`` batches submitted (double buffering on a device backend) -> journal every finished
chunk (:class:`~frpt_runtime.journal.RunJournal`) -> commit ``embeddings.npy``, ``run.json`` and, last,
``manifest.json`` (:func:`~frpt_runtime.manifest.write_outputs`). Bad files are skipped and listed, never fatal;
a run in which nothing could be embedded still writes its outputs, then fails with one line. What a run is --
its fingerprint, resume refusals, manifest and commit -- lives in :mod:`~frpt_runtime.embed_run`, shared with
``frpt-embed --ray`` (:mod:`frpt_runtime.distributed`).

``--resume`` continues from the journal: the same chunks are fed in the same batches, so the final
``embeddings.npy`` and ``manifest.json`` are byte-identical to an uninterrupted run's. It is refused, naming the
file, when a file the interrupted run already embedded changed since (size or modification time).
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from frpt_runtime.backends.base import Backend, Pending
from frpt_runtime.embed_run import (
    EmbedRun,
    check_embedded,
    commit,
    fingerprint,
    refuse_changed_files,
    refuse_foreign_finished_run,
    scan_for_run,
)
from frpt_runtime.errors import FrptError
from frpt_runtime.image_files import printable
from frpt_runtime.journal import PARTIAL_DIR, STATE_FILE, ChunkRecord, RunJournal
from frpt_runtime.manifest import EMBEDDINGS_FILE, MANIFEST_FILE, remove_stale_outputs
from frpt_runtime.out_lock import OutputLock
from frpt_runtime.pipeline import Batch, BatchPipeline

__all__ = ["EmbedReport", "embed_folder", "progress_bar"]


@dataclass
class EmbedReport:
    """Outcome of one :func:`embed_folder` call.

    Attributes:
        out_dir: where the outputs were written.
        count: rows in ``embeddings.npy`` (embedded images).
        skipped: ``(relative path, reason)`` of every candidate not embedded (undecodable, unreadable folder,
            symlink not followed, not a regular file, ...).
        embedding_dim: ``D``.
        backend, precision: what ran.
        resumed_images: files already done by an earlier, interrupted run (0 for a fresh run).
        wall_s: seconds this call spent from listing to the last write.
        images_per_s: files processed by this call per second of ``wall_s``; ``None`` when an interrupted run
            had already done them all.
    """

    out_dir: Path
    count: int
    skipped: list[tuple[str, str]]
    embedding_dim: int
    backend: str
    precision: str
    resumed_images: int
    wall_s: float
    images_per_s: float | None

    @property
    def embeddings_path(self) -> Path:
        return self.out_dir / EMBEDDINGS_FILE

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / MANIFEST_FILE

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        data["skipped"] = [list(item) for item in self.skipped]
        return data

    def format(self) -> str:
        """Human summary: counts, throughput, outputs, then one line per skipped path (names escaped to one line)."""
        if self.images_per_s is None:
            rate = f"all {self.resumed_images} files were done by the interrupted run"
        else:
            rate = f"{self.images_per_s:.1f} images/s" + (
                f", resumed after {self.resumed_images}" if self.resumed_images else ""
            )
        lines = [
            f"embedded {self.count} images (D={self.embedding_dim}, {self.backend}, {self.precision}) "
            f"in {self.wall_s:.2f} s, {rate}",
            f"wrote {self.embeddings_path} and {self.manifest_path}",
            f"skipped {len(self.skipped)} files" + (":" if self.skipped else ""),
        ]
        lines += [f"  {printable(path)}: {printable(reason)}" for path, reason in self.skipped]
        return "\n".join(lines)


@dataclass
class _Clock:
    started: float = field(default_factory=time.perf_counter)
    wait_decode_s: float = 0.0
    backend_s: float = 0.0


def _open_run(root: Path, backend: Backend, out: Path, batch: int, workers: int, follow_symlinks: bool) -> EmbedRun:
    """Scan the folder and check everything that can fail before any work: empty folder, workers, output folder
    (:func:`~frpt_runtime.embed_run.scan_for_run`), the model (activated here) and the batch size."""
    scan = scan_for_run(root, out, workers, follow_symlinks)
    info = backend.activate().info
    backend.check_batch(batch)
    out.mkdir(parents=True, exist_ok=True)
    return EmbedRun(scan, info, out, batch, workers, follow_symlinks)


def progress_bar(total: int, initial: int, progress: bool | None) -> tqdm:
    """frpt-embed's bar on stderr (``progress`` None: only when stderr is a terminal)."""
    enabled = sys.stderr.isatty() if progress is None else progress
    return tqdm(total=total, initial=initial, unit="img", file=sys.stderr, dynamic_ncols=True, disable=not enabled)


def embed_folder(
    images_dir: str | os.PathLike[str],
    backend: Backend,
    out_dir: str | os.PathLike[str],
    *,
    batch: int = 32,
    workers: int = 4,
    resume: bool = False,
    progress: bool | None = None,
    follow_symlinks: bool = False,
) -> EmbedReport:
    """Embed every image under ``images_dir`` and write the outputs to ``out_dir``.

    Args:
        images_dir: folder walked recursively (see :func:`frpt_runtime.image_files.scan_images`).
        backend: an (active or not) backend; activated here, not closed.
        out_dir: output folder (created; locked while the run lasts).
        batch: files per chunk / model batch.
        workers: decode threads.
        resume: continue a matching interrupted run in ``out_dir`` instead of starting over.
        progress: tqdm bar on stderr; None means only when stderr is a terminal.
        follow_symlinks: follow symlinked folders and symlinks leaving the folder.

    Raises:
        FrptError: no images, a batch the model cannot take, a model that cannot run here, an output folder that
            is a file, not writable or in use by another run, a resume over a different run or over changed files
            -- all before any image is decoded; a full disk; or, after the outputs are written, no file embedded.
    """
    clock = _Clock()
    root, out = Path(images_dir), Path(out_dir)
    run = _open_run(root, backend, out, batch, workers, follow_symlinks)
    scan, info = run.scan, run.info
    with OutputLock(out):
        remove_stale_outputs(out)
        journal = _start_journal(run, resume)
        resumed = min(journal.next_chunk * batch, len(scan.files))
        bar = progress_bar(len(scan.files), resumed, progress)
        try:
            start = journal.next_chunk
            with BatchPipeline.for_config(
                scan.paths, info.config, batch=batch, workers=workers, start_chunk=start
            ) as pipeline:
                _run_chunks(pipeline, backend, journal, run, clock, bar)
            count, skipped, wall = _commit(run, journal, clock, resumed)
            journal.discard()
        finally:
            journal.close()
            bar.close()
    check_embedded(run, count, skipped)
    processed = len(scan.files) - resumed
    return EmbedReport(
        out, count, skipped, info.embedding_dim, info.backend, str(info.precision), resumed, wall,
        processed / wall if processed else None,
    )  # fmt: skip


def _start_journal(run: EmbedRun, resume: bool) -> RunJournal:
    """Open the partial state (continuing it on ``resume``); refuse a resume whose finished files changed since."""
    if resume and not (run.out / PARTIAL_DIR / STATE_FILE).is_file() and (run.out / MANIFEST_FILE).exists():
        refuse_foreign_finished_run(run)
    journal = RunJournal(run.out, fingerprint(run), run.info.embedding_dim)
    journal.start(resume)
    try:
        refuse_changed_files(run, journal.records)
    except FrptError:
        journal.close()
        raise
    return journal


def _run_chunks(
    pipeline: BatchPipeline, backend: Backend, journal: RunJournal, run: EmbedRun, clock: _Clock, bar: tqdm
) -> None:
    """Feed decoded chunks to the backend, keeping up to ``max_in_flight`` submitted; journal each in order."""
    dim = run.info.embedding_dim
    rel = {item.path: item.rel for item in run.scan.files}
    in_flight: deque[tuple[Batch, Pending | None]] = deque()

    def finish_oldest() -> None:
        done, pending = in_flight.popleft()
        tick = time.perf_counter()
        rows = pending.result() if pending is not None else np.empty((0, dim), np.float32)
        clock.backend_s += time.perf_counter() - tick
        files = run.scan.files[done.start : done.start + len(done.paths) + len(done.skipped)]
        record = ChunkRecord(
            done.index,
            [rel[p] for p in done.paths],
            [(rel[p], why) for p, why in done.skipped],
            [(item.size, item.mtime_ns) for item in files],
        )
        journal.append(record, rows)
        bar.update(len(files))

    tick = time.perf_counter()
    for item in pipeline:
        clock.wait_decode_s += time.perf_counter() - tick
        tick = time.perf_counter()
        in_flight.append((item, backend.submit(item.images) if item.paths else None))
        clock.backend_s += time.perf_counter() - tick
        while len(in_flight) >= backend.max_in_flight:
            finish_oldest()
        tick = time.perf_counter()
    while in_flight:
        finish_oldest()


def _commit(
    run: EmbedRun, journal: RunJournal, clock: _Clock, resumed: int
) -> tuple[int, list[tuple[str, str]], float]:
    """Write the final outputs (manifest last, :func:`~frpt_runtime.embed_run.commit`); ``(rows, skipped, wall_s)``."""
    embeddings = journal.embeddings()
    timings = {"wait_decode_s": round(clock.wait_decode_s, 4), "backend_s": round(clock.backend_s, 4)}
    skipped, wall = commit(run, journal.records, embeddings, clock.started, resumed, **timings)
    return embeddings.shape[0], skipped, wall
