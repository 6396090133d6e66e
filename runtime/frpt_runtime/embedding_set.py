"""Read one ``frpt-embed`` output folder as a checked set of rows: what the search index is built from.

An output folder holds ``embeddings.npy`` (float32 ``[M, D]``, row ``i`` = ``manifest["images"][i]``) and
``manifest.json`` (see :mod:`frpt_runtime.manifest`). :func:`read_embedding_set` reads the pair through
:func:`frpt_runtime.manifest.read_embeddings`, the one reader that checks it (the manifest's sha256 of
``embeddings.npy``, row count, width, dtype, finite values), and adds what the index needs: absolute paths, labels.

A row's *label* is the image's folder relative to the embedded root (the ImageFolder convention, as
:mod:`frpt_runtime.metrics` scores it): ``birds/041/x.jpg`` under root ``birds`` has label ``041``; an image directly
in the root has label ``.``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from frpt_runtime.manifest import MANIFEST_FILE, read_embeddings

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
    """Load ``folder``'s ``embeddings.npy`` + ``manifest.json`` through the one checked reader
    (:func:`frpt_runtime.manifest.read_embeddings`: hash, shape, dtype, finite rows).

    Raises:
        FrptError: a missing, foreign, mismatched or malformed pair.
    """
    out = Path(folder)
    rows, manifest = read_embeddings(out)
    return EmbeddingSet(
        folder=out,
        root=Path(manifest["root"]),
        images=list(manifest["images"]),
        embeddings=rows,
        model_sha256=manifest["model"]["sha256"],
    )
