"""Read one ``frpt-embed`` output folder as a checked set of rows: what the search index is built from.

An output folder holds ``embeddings.npy`` (float32 ``[M, D]``, row ``i`` = ``manifest["images"][i]``) and
``manifest.json`` (see :mod:`frpt_runtime.manifest`). :func:`read_embedding_set` is the one reader the search
code uses; it checks that the pair agrees (format, row count, width, dtype, finite values) in
:func:`_load_rows`, the single place where every check of ``embeddings.npy`` against its manifest lives.

A row's *label* is the image's folder relative to the embedded root (the ImageFolder convention, as
:mod:`frpt.metrics` scores it): ``birds/041/x.jpg`` under root ``birds`` has label ``041``; an image directly
in the root has label ``.``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from frpt_runtime.distributed.shard_files import SHARDED_MANIFEST_FORMAT, read_sharded_rows
from frpt_runtime.errors import FrptError
from frpt_runtime.manifest import EMBEDDINGS_FILE, MANIFEST_FILE, read_manifest

__all__ = ["EmbeddingSet", "image_label", "is_embedding_folder", "read_embedding_set"]


def image_label(relative: str) -> str:
    """Label of an image from its POSIX path relative to the embedded root: its folder (``.`` at the root)."""
    return PurePosixPath(relative).parent.as_posix()


def is_embedding_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` looks like an ``frpt-embed`` output folder (holds ``manifest.json``)."""
    return (Path(path) / MANIFEST_FILE).is_file()


@dataclass(frozen=True)
class EmbeddingSet:
    """The rows of one ``frpt-embed`` output, checked against its manifest.

    Attributes:
        folder: the output folder read.
        root: the image folder that was embedded (absolute, as the manifest records it).
        images: image paths relative to ``root`` (POSIX), in row order.
        embeddings: float32 ``[M, D]``.
        model_sha256: hex digest of the model that wrote the rows.
    """

    folder: Path
    root: Path
    images: list[str]
    embeddings: np.ndarray
    model_sha256: str

    @property
    def dim(self) -> int:
        """Embedding width ``D``."""
        return int(self.embeddings.shape[1])

    @property
    def paths(self) -> list[str]:
        """Absolute POSIX path of every row's image."""
        return [(self.root / rel).as_posix() for rel in self.images]

    @property
    def labels(self) -> list[str]:
        """Every row's label (see the module docstring)."""
        return [image_label(rel) for rel in self.images]


def read_embedding_set(folder: str | os.PathLike[str]) -> EmbeddingSet:
    """Load ``folder/embeddings.npy`` + ``folder/manifest.json`` and check that they agree.

    A ``frpt-embed --ray --no-merge`` folder (a manifest listing shards) is read from its shards instead
    (:func:`frpt_runtime.distributed.shard_files.read_sharded_rows`: sha256, counts and width checked).

    Args:
        folder: an ``frpt-embed`` output folder.

    Returns:
        The :class:`EmbeddingSet`.

    Raises:
        FrptError: a missing or foreign manifest, a manifest without root / images / model hash, an unreadable
            ``embeddings.npy``, or rows that do not match the manifest (count, width, dtype, NaN/Inf).
    """
    out = Path(folder)
    manifest = _manifest_of(out)
    rows = None
    if manifest["format"] == SHARDED_MANIFEST_FORMAT:  # frpt-embed --ray --no-merge: the rows are in the shards
        images, rows = read_sharded_rows(out, manifest)
        manifest = {**manifest, "images": images}
    images = manifest.get("images")
    model = manifest.get("model")
    root = manifest.get("root")
    if (
        not isinstance(images, list)
        or not all(isinstance(item, str) for item in images)
        or not isinstance(root, str)
        or not isinstance(model, dict)
        or not isinstance(model.get("sha256"), str)
    ):
        raise FrptError(f"{out / MANIFEST_FILE} lacks images / root / model.sha256: re-run frpt-embed to rewrite it")
    return EmbeddingSet(
        folder=out,
        root=Path(root),
        images=list(images),
        embeddings=_load_rows(out, manifest) if rows is None else rows,
        model_sha256=model["sha256"],
    )


def _manifest_of(out: Path) -> dict[str, Any]:
    """``manifest.json`` of a merged output (:func:`~frpt_runtime.manifest.read_manifest`) or of a sharded one."""
    try:
        data = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and data.get("format") == SHARDED_MANIFEST_FORMAT:
        return data
    return read_manifest(out)


def _load_rows(out: Path, manifest: dict[str, Any]) -> np.ndarray:
    """``embeddings.npy`` of ``out``, verified against ``manifest`` (every check of the pair is made here)."""
    path = out / EMBEDDINGS_FILE
    try:
        rows = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise FrptError(f"cannot read {path} ({type(exc).__name__}): run frpt-embed to write it") from None
    images = manifest["images"]
    dim = manifest.get("embedding_dim")
    if not isinstance(rows, np.ndarray) or rows.ndim != 2 or rows.shape[0] != len(images):
        raise FrptError(f"{path} has shape {getattr(rows, 'shape', None)} but the manifest lists {len(images)} images")
    if rows.dtype != np.float32 or (dim is not None and rows.shape[1] != dim):
        raise FrptError(
            f"{path} is {rows.dtype} [{rows.shape[0]}, {rows.shape[1]}] but the manifest says float32 D={dim}: "
            "re-run frpt-embed"
        )
    if not np.isfinite(rows).all():
        raise FrptError(f"{path} holds NaN or Inf rows: re-run frpt-embed (and frpt-verify the model)")
    return rows
