"""``frpt-embed`` as a library call: open the backend, optionally prove parity first, then embed the folder.

The CLI parses its options into an :class:`EmbedJob` and calls :func:`run_embed_job`; the result says whether the
parity check (``--verify``) passed and, if it did (or was not asked for), what was embedded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frpt_runtime.backends import create_backend
from frpt_runtime.embed import EmbedReport, embed_folder
from frpt_runtime.errors import FrptError
from frpt_runtime.image_files import check_image_root
from frpt_runtime.parity import ParityReport
from frpt_runtime.verify import verify_model

__all__ = ["EmbedJob", "EmbedJobReport", "run_embed_job"]


@dataclass(frozen=True)
class EmbedJob:
    """What ``frpt-embed`` was asked to do.

    Attributes:
        images_dir: folder walked recursively.
        onnx, engine: exactly one model file.
        out: output folder.
        batch_size, workers: chunk / batch size and decode threads.
        device, providers, plugin_lib: where and how the backend runs (see :func:`create_backend`).
        resume: continue an interrupted run in ``out``.
        follow_symlinks: follow symlinked folders and symlinks leaving ``images_dir`` (default: list them as
            skipped; see :mod:`frpt_runtime.image_files`).
        verify: prove parity on the model's reference bundle first; embed nothing if it fails.
        bundle: that bundle (default: beside the model).
    """

    images_dir: Path
    onnx: Path | None = None
    engine: Path | None = None
    out: Path = Path("embeddings")
    batch_size: int = 32
    workers: int = 4
    device: str = "auto"
    providers: tuple[str, ...] = ()
    plugin_lib: Path | None = None
    resume: bool = False
    verify: bool = False
    bundle: Path | None = None
    follow_symlinks: bool = False


@dataclass(frozen=True)
class EmbedJobReport:
    """The parity check (if asked for) and the embedding run (``None`` when the check failed)."""

    parity: ParityReport | None
    embed: EmbedReport | None

    def __bool__(self) -> bool:
        return self.embed is not None

    def failure(self) -> str | None:
        """Why nothing was embedded (the parity failure), or ``None``."""
        return None if self.embed is not None or self.parity is None else self.parity.failure()

    def to_dict(self) -> dict[str, Any]:
        return {
            "parity": None if self.parity is None else self.parity.to_dict(),
            "embed": None if self.embed is None else self.embed.to_dict(),
        }

    def format(self) -> str:
        parts = [] if self.parity is None else [self.parity.format()]
        parts.append("parity check failed: nothing embedded" if self.embed is None else self.embed.format())
        return "\n".join(parts)


def run_embed_job(job: EmbedJob) -> EmbedJobReport:
    """Run ``job``; the backend is closed afterwards.

    Raises:
        FrptError: a missing image folder, a model that cannot run here, a batch it cannot take, a bad or busy
            ``out``, an unusable resume, a bad bundle — before any image is embedded; a run that embedded nothing.
    """
    if job.bundle is not None and not job.verify:
        raise FrptError("--bundle is the reference bundle of --verify: add --verify, or drop --bundle")
    check_image_root(job.images_dir)  # before the model is loaded
    with create_backend(
        onnx=job.onnx, engine=job.engine, providers=job.providers, device=job.device, plugin_lib=job.plugin_lib
    ) as backend:
        backend.check_batch(job.batch_size)
        parity = verify_model(backend, job.bundle) if job.verify else None
        if parity is not None and not parity:
            return EmbedJobReport(parity, None)
        report = embed_folder(
            job.images_dir,
            backend,
            job.out,
            batch=job.batch_size,
            workers=job.workers,
            resume=job.resume,
            follow_symlinks=job.follow_symlinks,
        )
    return EmbedJobReport(parity, report)
