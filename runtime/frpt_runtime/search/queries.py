"""Search queries: image files, image folders or ``frpt-embed`` outputs, turned into embedding rows.

Images are decoded by the same :class:`~frpt_runtime.pipeline.BatchPipeline` and run through the same
:class:`~frpt_runtime.backends.base.Backend` as ``frpt-embed`` uses, so a query image gets exactly the row
``frpt-embed`` would write for it; files that cannot be decoded are skipped with their reason. An
``frpt-embed`` output folder (one holding ``manifest.json``) contributes its rows as they are, with no model
run.

A query's *label* follows the gallery's rule (its folder under the root it was found in), so a sheet can
say whether a neighbour is of the same class: an image found under a query folder ``Q`` has the label of
its folder relative to ``Q`` (none directly in ``Q``); a row of an ``frpt-embed`` output has the label of its
folder under that run's root; a query that is itself a gallery image (same path) has that row's label. A
single image file outside the gallery has no label.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frpt_runtime.backends.base import Backend
from frpt_runtime.embedding_set import EmbeddingSet, image_label, is_embedding_folder, read_embedding_set
from frpt_runtime.errors import FrptError
from frpt_runtime.image_files import IMAGE_EXTENSIONS, list_images
from frpt_runtime.pipeline import BatchPipeline

__all__ = ["QueryImage", "QuerySet", "collect_queries", "embed_images"]


@dataclass(frozen=True)
class QueryImage:
    """One query image before embedding.

    Attributes:
        path: the image file as the user will read it (the given path, or folder / relative path).
        label: its label from the folder it was found in, None if it has none.
    """

    path: Path
    label: str | None


@dataclass
class QuerySet:
    """What the command-line queries amount to, in the order given.

    Attributes:
        images: image files to embed, with their labels (from files and folders).
        embedded: ``frpt-embed`` outputs, used as they are.
        order: for each given query, ``("images", start, stop)`` into :attr:`images` or ``("embedded", i, 0)``.
    """

    images: list[QueryImage]
    embedded: list[EmbeddingSet]
    order: list[tuple[str, int, int]]


def collect_queries(items: Sequence[str | os.PathLike[str]]) -> QuerySet:
    """Classify each query: an image file, a folder of images (walked recursively), or an ``frpt-embed`` output.

    Raises:
        FrptError: a path that does not exist, a folder without images, or an unreadable ``frpt-embed`` output.
    """
    if not items:
        raise FrptError("give at least one query: an image, a folder of images, or an frpt-embed output folder")
    found = QuerySet(images=[], embedded=[], order=[])
    for item in items:
        path = Path(item)
        if is_embedding_folder(path):
            found.order.append(("embedded", len(found.embedded), 0))
            found.embedded.append(read_embedding_set(path))
            continue
        start = len(found.images)
        if path.is_file():
            found.images.append(QueryImage(path, None))
        elif path.is_dir():
            files = list_images(path)
            if not files:
                raise FrptError(f"no images under {path} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
            for file in files:
                label = image_label(file.relative_to(path).as_posix())
                found.images.append(QueryImage(file, None if label == "." else label))
        else:
            raise FrptError(f"query not found: {path} (give an image, a folder of images or an frpt-embed output)")
        found.order.append(("images", start, len(found.images)))
    return found


def embed_images(
    paths: Sequence[Path], backend: Backend, *, batch: int = 32, workers: int = 4
) -> tuple[list[int], np.ndarray, list[tuple[int, str]]]:
    """Embed image files as ``frpt-embed`` does (same decoder pipeline, same backend calls).

    Args:
        paths: image files.
        backend: the model (activated here if it is not).
        batch: images per model call.
        workers: decode threads.

    Returns:
        ``(kept, rows, skipped)``: positions in ``paths`` that were embedded, their float32 ``[len(kept), D]``
        rows, and ``(position, reason)`` of every file that could not be decoded.

    Raises:
        FrptError: a batch the model cannot take.
    """
    info = backend.activate().info
    backend.check_batch(batch)
    kept: list[int] = []
    rows: list[np.ndarray] = [np.empty((0, info.embedding_dim), np.float32)]
    skipped: list[tuple[int, str]] = []
    with BatchPipeline.for_config(paths, info.config, batch=batch, workers=workers) as pipeline:
        for item in pipeline:
            if item.paths:
                rows.append(backend.infer(item.images))
            reasons = dict(item.skipped)
            for position in range(item.start, item.start + len(item.paths) + len(item.skipped)):
                if paths[position] in reasons:
                    skipped.append((position, reasons[paths[position]]))
                else:
                    kept.append(position)
    return kept, np.concatenate(rows), skipped
