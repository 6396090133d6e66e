"""Embed an image folder with any backend: ``embed_folder(...) -> EmbedReport`` (library behind ``frpt-embed``).

Flow: list the images (recursive, sorted) -> refuse an empty folder or a batch the model cannot take,
before any work -> decode ahead in a worker pool (:class:`~frpt_runtime.pipeline.BatchPipeline`) ->
keep up to ``backend.max_in_flight`` batches submitted (double buffering on a device backend) ->
journal every finished chunk (:class:`~frpt_runtime.manifest.RunJournal`) -> write ``embeddings.npy``,
``manifest.json`` and ``run.json`` atomically. Bad files are skipped and listed, never fatal.

``--resume`` continues from the journal: the same chunks are fed in the same batches, so the final
``embeddings.npy`` and ``manifest.json`` are byte-identical to an uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from frpt_runtime import __version__
from frpt_runtime.atomic import atomic_write, atomic_write_json
from frpt_runtime.backends.base import Backend, ModelInfo, Pending
from frpt_runtime.errors import FrptError
from frpt_runtime.images import IMAGE_EXTENSIONS, list_images, load_image
from frpt_runtime.manifest import (
    EMBEDDINGS_FILE,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    PARTIAL_DIR,
    RUN_FILE,
    ChunkRecord,
    RunJournal,
    read_manifest,
)
from frpt_runtime.output_paths import check_output_dir
from frpt_runtime.pipeline import Batch, BatchPipeline

__all__ = ["EmbedReport", "embed_folder"]


@dataclass
class EmbedReport:
    """Outcome of one :func:`embed_folder` call.

    Attributes:
        out_dir: where the outputs were written.
        count: rows in ``embeddings.npy`` (embedded images).
        skipped: ``(relative path, reason)`` of every file that could not be decoded.
        embedding_dim: ``D``.
        backend, precision: what ran.
        resumed_images: files already done by an earlier, interrupted run (0 for a fresh run).
        wall_s: seconds this call spent from listing to the last write.
        images_per_s: files processed by this call per second of ``wall_s``.
    """

    out_dir: Path
    count: int
    skipped: list[tuple[str, str]]
    embedding_dim: int
    backend: str
    precision: str
    resumed_images: int
    wall_s: float
    images_per_s: float

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
        """Human summary: counts, throughput, outputs, then one line per skipped file."""
        lines = [
            f"embedded {self.count} images (D={self.embedding_dim}, {self.backend}, {self.precision}) "
            f"in {self.wall_s:.2f} s, {self.images_per_s:.1f} images/s"
            + (f", resumed after {self.resumed_images}" if self.resumed_images else ""),
            f"wrote {self.embeddings_path} and {self.manifest_path}",
            f"skipped {len(self.skipped)} files" + (":" if self.skipped else ""),
        ]
        lines += [f"  {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)


@dataclass
class _Clock:
    started: float = field(default_factory=time.perf_counter)
    wait_decode_s: float = 0.0
    backend_s: float = 0.0


def _open_run(root: Path, backend: Backend, out: Path, batch: int, workers: int) -> tuple[list[Path], ModelInfo]:
    """List the images and check everything that can fail before any work: empty folder, workers, output folder,
    the model (activated here) and the batch size."""
    paths = list_images(root)
    if not paths:
        raise FrptError(f"no images under {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    if workers < 1:
        raise FrptError(f"--workers must be >= 1, got {workers}")
    check_output_dir(out, "--out")
    info = backend.activate().info
    backend.check_batch(batch)
    out.mkdir(parents=True, exist_ok=True)
    return paths, info


def _progress_bar(total: int, initial: int, progress: bool | None) -> tqdm:
    enabled = sys.stderr.isatty() if progress is None else progress
    return tqdm(total=total, initial=initial, unit="img", file=sys.stderr, dynamic_ncols=True, disable=not enabled)


def _write_outputs(
    out: Path, root: Path, info: ModelInfo, batch: int, workers: int, journal: RunJournal, clock: _Clock, resumed: int
) -> tuple[np.ndarray, list[tuple[str, str]], float]:
    """Write ``embeddings.npy``, ``manifest.json`` and ``run.json``; return ``(embeddings, skipped, wall_s)``."""
    embeddings = journal.embeddings()
    skipped = [item for record in journal.records for item in record.skipped]
    atomic_write(out / EMBEDDINGS_FILE, lambda handle: np.save(handle, embeddings, allow_pickle=False))
    atomic_write_json(out / MANIFEST_FILE, _manifest(root, info, batch, journal.records, skipped))
    wall = time.perf_counter() - clock.started
    total = embeddings.shape[0] + len(skipped)
    timings = {
        "wall_s": round(wall, 4),
        "images_per_s": round((total - resumed) / wall, 2),
        "images_processed": total - resumed,
        "resumed_images": resumed,
        "wait_decode_s": round(clock.wait_decode_s, 4),
        "backend_s": round(clock.backend_s, 4),
        "batch": batch,
        "workers": workers,
        "finished_unix": round(time.time(), 3),
    }
    atomic_write_json(out / RUN_FILE, timings)
    return embeddings, skipped, wall


def embed_folder(
    images_dir: str | os.PathLike[str],
    backend: Backend,
    out_dir: str | os.PathLike[str],
    *,
    batch: int = 32,
    workers: int = 4,
    resume: bool = False,
    progress: bool | None = None,
) -> EmbedReport:
    """Embed every image under ``images_dir`` and write the outputs to ``out_dir``.

    Args:
        images_dir: folder walked recursively (see :func:`frpt_runtime.images.list_images`).
        backend: an (active or not) backend; activated here, not closed.
        out_dir: output folder (created).
        batch: files per chunk / model batch.
        workers: decode threads.
        resume: continue a matching interrupted run in ``out_dir`` instead of starting over.
        progress: tqdm bar on stderr; None means only when stderr is a terminal.

    Returns:
        The :class:`EmbedReport`.

    Raises:
        FrptError: no images, a batch the model cannot take, a model that cannot run here, an output folder
            that is a file or not writable, or a resume over a different run's partial state — all before any
            image is decoded.
    """
    clock = _Clock()
    root, out = Path(images_dir), Path(out_dir)
    paths, info = _open_run(root, backend, out, batch, workers)
    rel = [_rel(p, root) for p in paths]
    if resume and not (out / PARTIAL_DIR / "state.json").is_file() and (out / MANIFEST_FILE).exists():
        _refuse_foreign_finished_run(out, root, rel, info, batch)
    journal = RunJournal(out, _fingerprint(root, rel, info, batch), info.embedding_dim)
    journal.start(resume)
    resumed = min(journal.next_chunk * batch, len(paths))
    bar = _progress_bar(len(paths), resumed, progress)
    try:
        with _pipeline(paths, info, batch, workers, journal.next_chunk) as pipeline:
            _run_chunks(pipeline, backend, journal, root, clock, bar)
        embeddings, skipped, wall = _write_outputs(out, root, info, batch, workers, journal, clock, resumed)
        journal.discard()
    finally:
        journal.close()
        bar.close()
    return EmbedReport(
        out_dir=out,
        count=embeddings.shape[0],
        skipped=skipped,
        embedding_dim=info.embedding_dim,
        backend=info.backend,
        precision=str(info.precision),
        resumed_images=resumed,
        wall_s=wall,
        images_per_s=(len(paths) - resumed) / wall,
    )


def _pipeline(paths: list[Path], info: ModelInfo, batch: int, workers: int, start_chunk: int) -> BatchPipeline:
    """The decode pool over ``paths`` with the model config's input geometry and decoder."""
    cfg = info.config
    decode = partial(load_image, decoder=cfg.decoder)
    return BatchPipeline(
        paths, cfg.input_size, cfg.crop_pct, batch=batch, workers=workers, start_chunk=start_chunk, decode=decode
    )


def _run_chunks(
    pipeline: BatchPipeline, backend: Backend, journal: RunJournal, root: Path, clock: _Clock, bar: tqdm
) -> None:
    """Feed decoded chunks to the backend, keeping up to ``max_in_flight`` submitted; journal each in order."""
    dim = backend.info.embedding_dim
    in_flight: deque[tuple[Batch, Pending | None]] = deque()

    def finish_oldest() -> None:
        done, pending = in_flight.popleft()
        tick = time.perf_counter()
        rows = pending.result() if pending is not None else np.empty((0, dim), np.float32)
        clock.backend_s += time.perf_counter() - tick
        record = ChunkRecord(
            done.index, [_rel(p, root) for p in done.paths], [(_rel(p, root), why) for p, why in done.skipped]
        )
        journal.append(record, rows)
        bar.update(len(done.paths) + len(done.skipped))

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


def _refuse_foreign_finished_run(out: Path, root: Path, rel: list[str], info: ModelInfo, batch: int) -> None:
    """``--resume`` with no partial run but a finished one in ``out``: go on only if it is this same run."""
    try:
        done = read_manifest(out)
    except FrptError:
        differ = ["format"]
    else:
        model = done.get("model")
        skipped = [item.get("path") for item in done.get("skipped", []) if isinstance(item, dict)]
        checks = {
            "root": done.get("root") == str(root.resolve()),
            "model_sha256": isinstance(model, dict) and model.get("sha256") == info.sha256,
            "batch": done.get("batch") == batch,
            "files": sorted([*done.get("images", []), *skipped]) == sorted(rel),
        }
        differ = [name for name, same in checks.items() if not same]
    if differ:
        raise FrptError(
            f"--resume: {out} holds no partial run but a finished run of another job (differs in: "
            f"{', '.join(differ)}): drop --resume to overwrite it, or choose another --out"
        )


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _fingerprint(root: Path, rel: list[str], info: ModelInfo, batch: int) -> dict[str, Any]:
    """Facts a resumed run must share with the interrupted one (JSON-ready)."""
    return {
        "format": MANIFEST_FORMAT,
        "root": str(root.resolve()),
        "files_sha256": hashlib.sha256("\n".join(rel).encode("utf-8")).hexdigest(),
        "file_count": len(rel),
        "model_sha256": info.sha256,
        "backend": info.backend,
        "detail": dict(info.detail),
        "batch": batch,
        "embedding_dim": info.embedding_dim,
    }


def _manifest(
    root: Path, info: ModelInfo, batch: int, records: list[ChunkRecord], skipped: list[tuple[str, str]]
) -> dict[str, Any]:
    images = [path for record in records for path in record.paths]
    return {
        "format": MANIFEST_FORMAT,
        "toolkit_version": __version__,
        "root": str(root.resolve()),
        "count": len(images),
        "embedding_dim": info.embedding_dim,
        "images": images,
        "skipped": [{"path": path, "reason": reason} for path, reason in skipped],
        "model": {"path": str(info.path.resolve()), "sha256": info.sha256},
        "backend": info.backend,
        "backend_detail": dict(info.detail),
        "family": info.metadata.family,
        "precision": str(info.precision),
        "lowering": str(info.lowering),
        "config": info.config.to_dict(),
        "batch": batch,
        "timings_file": RUN_FILE,
    }
