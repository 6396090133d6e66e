"""What one ``frpt-embed`` run is, whichever engine executes it: its facts, resume rules, manifest and commit.

The single-box run (:mod:`frpt_runtime.embed`) and the Ray run (:mod:`frpt_runtime.distributed`) describe a run
as one :class:`EmbedRun` (the folder's scan, the model's info, ``OUT``, the batch) and call the functions here, so
they refuse the same resumes, write the same manifest and commit it the same way -- the same bytes by
construction, not by a second copy:

* :func:`scan_for_run` -- the listing (:func:`~frpt_runtime.image_files.scan_images`) and the checks that need no
  model: an empty folder, ``--workers``, ``--out``;
* :func:`fingerprint` -- the facts a resumed run must share with the interrupted one (file list hash, model,
  backend, batch, symlink policy; format :data:`~frpt_runtime.journal.PARTIAL_FORMAT`);
* :func:`refuse_changed_files` -- a finished chunk whose file changed since (size or modification time, recorded
  per chunk at listing time) refuses the resume, naming the file;
* :func:`refuse_foreign_finished_run` -- ``--resume`` over the finished outputs of another job;
* :func:`run_manifest` / :func:`commit` -- the manifest of the finished chunks plus every path the scan skipped,
  committed by :func:`~frpt_runtime.manifest.write_outputs` (``embeddings.npy``, ``run.json``, ``manifest.json``
  last, with the embeddings' sha256);
* :func:`check_embedded` -- a run that embedded nothing fails in one line, after its skip list is written.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frpt_runtime import __version__
from frpt_runtime.backends.base import ModelInfo
from frpt_runtime.errors import FrptError
from frpt_runtime.image_files import IMAGE_EXTENSIONS, ImageScan, printable, scan_images
from frpt_runtime.journal import PARTIAL_FORMAT, RESTART, ChunkRecord, first_changed_file
from frpt_runtime.manifest import MANIFEST_FILE, MANIFEST_FORMAT, RUN_FILE, read_embeddings, write_outputs
from frpt_runtime.output_paths import check_output_dir

__all__ = [
    "EmbedRun",
    "all_skipped",
    "check_embedded",
    "commit",
    "fingerprint",
    "refuse_changed_files",
    "refuse_foreign_finished_run",
    "run_manifest",
    "run_timings",
    "scan_for_run",
]


@dataclass(frozen=True)
class EmbedRun:
    """The fixed facts of one run.

    Attributes:
        scan: the image folder's listing (files in order with their stats, skipped candidates).
        info: the model that runs.
        out: the output folder.
        batch: files per chunk / model batch.
        workers: decode threads (per decode process).
        follow_symlinks: the scan followed symlinked folders and symlinks leaving the root.
    """

    scan: ImageScan
    info: ModelInfo
    out: Path
    batch: int
    workers: int
    follow_symlinks: bool

    @property
    def names(self) -> list[str]:
        """Every file of the run, relative POSIX paths in listing order."""
        return [item.rel for item in self.scan.files]


def scan_for_run(root: Path, out: Path, workers: int, follow_symlinks: bool) -> ImageScan:
    """Scan ``root`` and check what can fail before a model is loaded: no candidates, ``workers``, ``out``.

    Raises:
        FrptError: the folder holds no candidate file, ``workers < 1``, ``out`` is a file or not writable.
    """
    scan = scan_images(root, follow_symlinks=follow_symlinks)
    if not scan.files and not scan.skipped:
        raise FrptError(f"no images under {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    if workers < 1:
        raise FrptError(f"--workers must be >= 1, got {workers}")
    check_output_dir(out, "--out")
    return scan


def fingerprint(run: EmbedRun) -> dict[str, Any]:
    """Facts a resumed run must share with the interrupted one (JSON-ready)."""
    names = b"\0".join(name.encode("utf-8", "surrogateescape") for name in run.names)
    return {
        "format": PARTIAL_FORMAT,
        "root": str(run.scan.root.resolve()),
        "files_sha256": hashlib.sha256(names).hexdigest(),
        "file_count": len(run.scan.files),
        "follow_symlinks": run.follow_symlinks,
        "model_sha256": run.info.sha256,
        "backend": run.info.backend,
        "detail": dict(run.info.detail),
        "batch": run.batch,
        "embedding_dim": run.info.embedding_dim,
    }


def refuse_changed_files(run: EmbedRun, records: list[ChunkRecord]) -> None:
    """Refuse a resume when a file of a finished chunk changed since it was listed (size or modification time).

    Args:
        run: the resumed run (its scan gives the files' current stats).
        records: the finished chunks of the interrupted run (with the stats recorded then), any order.

    Raises:
        FrptError: naming the first such file.
    """
    stats = [(item.size, item.mtime_ns) for item in run.scan.files]
    changed = first_changed_file(sorted(records, key=lambda record: record.chunk), run.names, stats, run.batch)
    if changed is not None:
        raise FrptError(
            f"--resume: {printable(changed)} changed since the interrupted run embedded it (size or modification "
            f"time differs): {RESTART}"
        )


def refuse_foreign_finished_run(run: EmbedRun) -> None:
    """``--resume`` with no partial run but a finished one in ``out``: go on only if it is this same run.

    Raises:
        FrptError: the finished outputs do not check out, or are those of another folder, model, batch or file set.
    """
    try:
        _, done = read_embeddings(run.out)
    except FrptError as exc:
        raise FrptError(
            f"--resume: {run.out} holds no partial run to continue, and its finished outputs do not check out "
            f"({exc}): drop --resume to write them again"
        ) from None
    expected = sorted([*run.names, *(path for path, _ in run.scan.skipped)])
    checks = {
        "root": done["root"] == str(run.scan.root.resolve()),
        "model_sha256": done["model"]["sha256"] == run.info.sha256,
        "batch": done["batch"] == run.batch,
        "files": sorted([*done["images"], *(item["path"] for item in done["skipped"])]) == expected,
    }
    differ = [name for name, same in checks.items() if not same]
    if differ:
        raise FrptError(
            f"--resume: {run.out} holds no partial run but a finished run of another job (differs in: "
            f"{', '.join(differ)}): drop --resume to overwrite it, or choose another --out"
        )


def run_manifest(run: EmbedRun, records: list[ChunkRecord], skipped: list[tuple[str, str]]) -> dict[str, Any]:
    """Every manifest field but ``embeddings_sha256`` (see :mod:`frpt_runtime.manifest`).

    Args:
        run: the run.
        records: every chunk of the run, in order (``images`` lists their embedded files).
        skipped: every ``(path, reason)`` not embedded, sorted.
    """
    info = run.info
    images = [path for record in records for path in record.paths]
    return {
        "format": MANIFEST_FORMAT,
        "toolkit_version": __version__,
        "root": str(run.scan.root.resolve()),
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
        "batch": run.batch,
        "timings_file": RUN_FILE,
    }


def all_skipped(run: EmbedRun, records: list[ChunkRecord]) -> list[tuple[str, str]]:
    """Every path not embedded, sorted: the scan's skipped candidates and the chunks' undecodable files."""
    return sorted([*run.scan.skipped, *(item for record in records for item in record.skipped)])


def commit(
    run: EmbedRun, records: list[ChunkRecord], embeddings: np.ndarray, started: float, resumed: int, **extra: Any
) -> tuple[list[tuple[str, str]], float]:
    """Write the finished run's outputs with :func:`~frpt_runtime.manifest.write_outputs` (the manifest last).

    Args:
        run: the run (``run.out`` locked by the caller).
        records: every chunk of the run, in order.
        embeddings: float32 ``[M, D]``, row ``i`` the ``i``-th embedded file of ``records``.
        started: ``time.perf_counter()`` when this invocation started.
        resumed: files an interrupted run had already done.
        extra: further facts of this invocation for ``run.json`` (never in the manifest).

    Returns:
        ``(skipped, wall_s)``: every path not embedded, sorted, and seconds since ``started``.
    """
    skipped = all_skipped(run, records)
    wall = time.perf_counter() - started
    write_outputs(run.out, embeddings, run_manifest(run, records, skipped), run_timings(run, wall, resumed, extra))
    return skipped, wall


def run_timings(run: EmbedRun, wall: float, resumed: int, extra: dict[str, Any]) -> dict[str, Any]:
    """``run.json``: this invocation's wall time and rate (``None`` when an interrupted run had done every file)."""
    processed = len(run.scan.files) - resumed
    return {
        "wall_s": round(wall, 4),
        "images_per_s": round(processed / wall, 2) if processed else None,
        "images_processed": processed,
        "resumed_images": resumed,
        "batch": run.batch,
        "workers": run.workers,
        **extra,
        "finished_unix": round(time.time(), 3),
    }


def check_embedded(run: EmbedRun, count: int, skipped: list[tuple[str, str]]) -> None:
    """A run whose outputs hold no row fails (after they are written: the manifest lists why each file was skipped).

    Raises:
        FrptError: ``count == 0``.
    """
    if count == 0:
        raise FrptError(
            f"none of the {len(skipped)} candidate files under {run.scan.root} could be embedded: "
            f"{run.out / MANIFEST_FILE} lists each with its reason"
        )
