"""``build_index(...) -> IndexReport``: index one or more ``frpt-embed`` outputs of one model (or extend an index).

Each output folder is read through :func:`frpt_runtime.embedding_set.read_embedding_set` (embeddings checked against
their manifest); folders of different models or widths, and images that would get two rows, are refused.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from frpt_runtime.embedding_set import EmbeddingSet, read_embedding_set
from frpt_runtime.errors import FrptError
from frpt_runtime.output_paths import check_output_file
from frpt_runtime.search.index import Index
from frpt_runtime.search.reports import IndexReport

__all__ = ["build_index"]


def build_index(
    embedding_dirs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    kind: str | None = None,
    params: dict[str, int] | None = None,
    add: bool = False,
    recall_queries: int = 1000,
    seed: int = 0,
) -> IndexReport:
    """Index one or more ``frpt-embed`` outputs of one model (or, with ``add``, extend the index at ``out``).

    Args:
        embedding_dirs: ``frpt-embed`` output folders, each checked against its manifest.
        out: the index file to write (its sidecar goes to ``<out>.json``).
        kind: ``flat`` (default) | ``hnsw`` | ``ivf``; with ``add``, if given, must be the index's kind.
        params: the kind's parameters (see :data:`frpt_runtime.search.index.DEFAULT_PARAMS`); not with ``add``.
        add: append the rows to the existing index at ``out`` (same model, same width).
        recall_queries: gallery images used as queries to measure an approximate index's recall.
        seed: seed of that sample (and of IVF's k-means).

    Returns:
        The :class:`IndexReport`.

    Raises:
        FrptError: no folder, an unreadable or inconsistent folder, folders of different models or widths, an
            image listed twice, a bad kind/parameter, or with ``add``: no index at ``out``, another model, or a
            different kind / parameters asked for.
    """
    started = time.perf_counter()
    target = Path(out)
    check_output_file(target, "-o/--out")
    sets = _read_sets(embedding_dirs)
    first = sets[0]
    rows = np.concatenate([item.embeddings for item in sets])
    paths = [path for item in sets for path in item.paths]
    labels = [label for item in sets for label in item.labels]
    if add:
        index = _extended(target, sets, rows, paths, labels, kind, params, recall_queries, seed)
    else:
        _refuse_duplicates(sets, paths, set())
        index = Index.build(
            rows, paths, labels, first.model_sha256, kind or "flat", params, recall_queries=recall_queries, seed=seed
        )
    side = index.save(target)
    return IndexReport(
        index=target,
        sidecar=side,
        kind=index.kind,
        params=dict(index.params),
        count=index.count,
        added=len(paths),
        dim=index.dim,
        recall=index.recall.to_dict() if index.recall is not None else None,
        wall_s=time.perf_counter() - started,
    )


def _extended(
    target: Path,
    sets: list[EmbeddingSet],
    rows: np.ndarray,
    paths: list[str],
    labels: list[str],
    kind: str | None,
    params: dict[str, int] | None,
    recall_queries: int,
    seed: int,
) -> Index:
    """The index at ``target`` with ``rows`` appended (same model; its kind and parameters kept)."""
    if params:
        raise FrptError("--add keeps the index's parameters: drop --param, or rebuild without --add")
    index = Index.load(target)
    if kind is not None and kind != index.kind:
        raise FrptError(f"--add to a {index.kind} index: drop --kind {kind} (or rebuild without --add)")
    _refuse_duplicates(sets, paths, set(index.paths))
    index.add(rows, paths, labels, sets[0].model_sha256, recall_queries=recall_queries, seed=seed)
    return index


def _read_sets(embedding_dirs: Sequence[str | os.PathLike[str]]) -> list[EmbeddingSet]:
    """Read every folder (checked against its manifest); all must come from one model of one width."""
    if not embedding_dirs:
        raise FrptError("give at least one frpt-embed output folder to index")
    sets = [read_embedding_set(folder) for folder in embedding_dirs]
    first = sets[0]
    for other in sets[1:]:
        if other.model_sha256 != first.model_sha256 or other.dim != first.dim:
            raise FrptError(
                f"{other.folder} was embedded by another model than {first.folder} (model sha256 "
                f"{other.model_sha256[:12]}... D={other.dim} vs {first.model_sha256[:12]}... D={first.dim}): "
                "index outputs of one model together"
            )
    return sets


def _refuse_duplicates(sets: list[EmbeddingSet], paths: list[str], present: set[str]) -> None:
    """Refuse an image that would get two rows (listed twice, or already in the index)."""
    seen = set(present)
    for item in sets:
        for path in item.paths:
            if path in seen:
                where = "is already in the index" if path in present else "is listed twice"
                raise FrptError(
                    f"{path} (from {item.folder}) {where}: index each frpt-embed output once"
                    + (" (drop it from --add)" if path in present else "")
                )
            seen.add(path)
