"""Leave-one-out Recall@K through an exact FAISS index: the same figures as :func:`frpt_runtime.metrics.recall_at_k`,
without its ``[M, M]`` similarity matrix (80 GB of float64 at 100k images).

The reference ranks every other image by float64 cosine, ties to the lower index. Here, per block of
queries: an exact ``IndexFlatIP`` over the float32-rounded unit rows returns a shortlist of ``max(K) + 1 +
margin`` candidates; their float64 cosines are recomputed from the float64 unit rows, and they are ranked by
``(-cosine, index)``, the reference's order. The shortlist provably holds the reference's top ``max(K)``
when its ``max(K)``-th float64 cosine exceeds the shortlist's lowest float32 score by more than the float32
error bound ``eps`` (any row left out scored at most that in float32, so at most that plus ``eps`` in
float64); a query that fails the test (near-ties at the cut) is ranked in full in float64 instead.
The ranking is therefore the reference's wherever two cosines differ by more than float64 rounding, and
cosines that are exactly equal on every code path (dyadic rows such as +-1 vectors of power-of-two norm,
their duplicates, symmetric points) break to the lower index in both. One case no other computation can
reproduce bit for bit: the reference's own matrix product may round two *duplicate* columns of arbitrary
floats differently (seen for ~3 % of the entries of duplicated Gaussian rows); its tie order there is its
BLAS's rounding, not the lower index it documents, and the two computations may then disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from frpt_runtime.search.faiss_module import import_faiss

__all__ = ["indexed_recall_at_k", "score_error_bound"]

_BLOCK = 512
_MARGIN = 8


def score_error_bound(dim: int) -> float:
    """Bound on |float32 inner product - float64 cosine| for unit rows of width ``dim``.

    Rounding the unit rows to float32 moves a cosine by at most ``2u`` and any float32 summation order adds at
    most ``dim * u / (1 - dim * u)`` (``u = 2**-24``, Cauchy-Schwarz bounds the sum of ``|x_i y_i|`` by 1);
    the bound doubles their sum for margin.
    """
    u = 2.0**-24
    return 2.0 * (2.0 * u + dim * u / (1.0 - dim * u))


def indexed_recall_at_k(
    embeddings: np.ndarray, labels: Sequence[int] | np.ndarray, ks: Sequence[int] = (1, 2, 4, 8)
) -> dict[str, float]:
    """Leave-one-out Recall@K under cosine similarity, searched through an exact FAISS index.

    Args:
        embeddings: ``[M, D]`` float (rows are L2-normalised here).
        labels: ``[M]`` class labels.
        ks: the K values.

    Returns:
        ``{"recall@K": fraction in [0, 1]}`` for each K, equal to :func:`frpt_runtime.metrics.recall_at_k`'s.

    Raises:
        ValueError: fewer than two samples, shape mismatch, K out of range, non-finite embeddings (as the
            reference).
        FrptError: FAISS is not installed.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    lab = np.asarray(labels)
    if emb.ndim != 2 or lab.shape != (emb.shape[0],):
        raise ValueError(f"need embeddings [M, D] and labels [M], got {emb.shape} and {lab.shape}")
    count, dim = emb.shape
    if count < 2:
        raise ValueError("Recall@K needs at least two samples")
    if not np.isfinite(emb).all():
        raise ValueError("embeddings contain NaN or Inf")
    if min(ks) < 1 or max(ks) > count - 1:
        raise ValueError(f"K must be in 1..{count - 1}, got {list(ks)}")
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    unit32 = np.ascontiguousarray(unit, dtype=np.float32)
    faiss = import_faiss()
    index = faiss.IndexFlatIP(dim)
    index.add(unit32)
    kmax = max(ks)
    wide = min(count, kmax + 1 + _MARGIN)
    eps = score_error_bound(dim)
    neighbours = np.empty((count, kmax), dtype=np.int64)
    for start in range(0, count, _BLOCK):
        queries = np.arange(start, min(count, start + _BLOCK))
        low32, shortlist = index.search(unit32[queries], wide)
        cosines = np.einsum("qd,qkd->qk", unit[queries], unit[shortlist])
        cosines[shortlist == queries[:, None]] = -np.inf  # leave the query out
        order = np.lexsort((shortlist, -cosines), axis=-1)[:, :kmax]
        top = np.take_along_axis(shortlist, order, axis=1)
        kth = np.take_along_axis(cosines, order[:, -1:], axis=1)[:, 0]
        certain = (kth > low32[:, -1] + eps) | (wide == count)
        neighbours[queries] = top
        for query in queries[~certain]:
            row = unit @ unit[query]
            row[query] = -np.inf
            neighbours[query] = np.argsort(-row, kind="stable")[:kmax]
    hits = lab[neighbours] == lab[:, None]
    return {f"recall@{k}": float(hits[:, :k].any(axis=1).mean()) for k in ks}
