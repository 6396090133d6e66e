"""Retrieval metrics: Recall@K with leave-one-out queries (docs/design.md §4, "Evaluation").

Standard protocol of CUB-200 / Cars-196 / FGVC-Aircraft retrieval: every test image is a query against
all *other* test images, ranked by cosine similarity; Recall@K is the fraction of queries with at least
one same-class image among their K nearest neighbours. numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from frpt_runtime.errors import FrptError

__all__ = ["DEFAULT_KS", "format_recall", "recall_at_k", "recall_from_embeddings"]

DEFAULT_KS = (1, 2, 4, 8)


def recall_at_k(
    embeddings: np.ndarray, labels: Sequence[int] | np.ndarray, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Leave-one-out Recall@K under cosine similarity.

    Args:
        embeddings: ``[M, D]`` float (normalised or not; rows are L2-normalised here).
        labels: ``[M]`` integer class labels.
        ks: the K values.

    Returns:
        ``{"recall@K": fraction in [0, 1]}`` for each K. Ties in similarity keep the lower index first.

    Raises:
        ValueError: fewer than two samples, shape mismatch, K out of range, non-finite embeddings.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    lab = np.asarray(labels)
    if emb.ndim != 2 or lab.shape != (emb.shape[0],):
        raise ValueError(f"need embeddings [M, D] and labels [M], got {emb.shape} and {lab.shape}")
    m = emb.shape[0]
    if m < 2:
        raise ValueError("Recall@K needs at least two samples")
    if not np.isfinite(emb).all():
        raise ValueError("embeddings contain NaN or Inf")
    if min(ks) < 1 or max(ks) > m - 1:
        raise ValueError(f"K must be in 1..{m - 1}, got {list(ks)}")
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    unit = emb / np.maximum(norms, 1e-12)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)  # leave the query out
    order = np.argsort(-sim, axis=1, kind="stable")[:, : max(ks)]
    hits = lab[order] == lab[:, None]  # [M, Kmax]
    return {f"recall@{k}": float(hits[:, :k].any(axis=1).mean()) for k in ks}


def recall_from_embeddings(out_dir: str | Path, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Recall@K of what ``frpt-embed`` wrote (``embeddings.npy`` + ``manifest.json``) in ``out_dir``.

    An image's class is its folder relative to the embedded root (ImageFolder layout). Scored through an exact
    FAISS index (:func:`frpt_runtime.search.recall.indexed_recall_at_k`: the figures of :func:`recall_at_k`
    without its ``[M, M]`` similarity matrix), so large galleries fit in memory.

    Returns:
        ``{"recall@K": ...}`` (K below the image count) plus ``"images"`` and ``"classes"``.

    Raises:
        FrptError: missing, mismatched or malformed files (:func:`frpt_runtime.manifest.read_embeddings`), fewer
            than two images, fewer than two classes, or no FAISS.
    """
    from frpt_runtime.manifest import read_embeddings
    from frpt_runtime.search.recall import indexed_recall_at_k

    embeddings, manifest = read_embeddings(out_dir)  # the checked pair (hash, shape, finite values)
    images = manifest["images"]
    if len(images) < 2:
        raise FrptError(f"{out_dir} holds {len(images)} embedded images: Recall@K needs at least two")
    folders = [PurePosixPath(p).parent.as_posix() for p in images]
    index = {name: i for i, name in enumerate(sorted(set(folders)))}
    if len(index) < 2:  # every image its own class's only neighbour: Recall@K would read 100 % and mean nothing
        raise FrptError(
            f"all {len(images)} images in {out_dir} come from one folder ({folders[0]!r}): Recall@K needs classes as "
            "subfolders (ROOT/<class>/<image>); run frpt-embed on their parent folder"
        )
    labels = np.array([index[f] for f in folders])
    result: dict[str, float] = dict(indexed_recall_at_k(embeddings, labels, [k for k in ks if k < len(images)]))
    result.update(images=len(images), classes=len(index))
    return result


def format_recall(recall: dict[str, float]) -> str:
    """``R@1 61.2  R@2 ...`` in percent."""
    return "  ".join(f"R@{key.split('@')[1]} {100 * value:5.1f}" for key, value in recall.items())
