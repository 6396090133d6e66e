"""A nearest-neighbour index over L2-normalised embeddings (FAISS), with a JSON sidecar that loading checks.

Similarity is cosine: rows are L2-normalised (float32) on the way in and searched by inner product, so a
score is a cosine in ``[-1, 1]`` (1 for the same image). Three kinds:

* ``flat`` — ``IndexFlatIP``, exact brute force (the default, and the reference the others are measured
  against);
* ``hnsw`` — ``IndexHNSWFlat`` graph (``M``, ``ef_construction``, ``ef_search``);
* ``ivf`` — ``IndexIVFFlat`` k-means cells (``nlist``, ``nprobe``); parameters and defaults in
  :mod:`frpt_runtime.search.params`.

Both approximate kinds store the vectors unquantised, so their scores are exact cosines; what they can
miss is a neighbour. Their **recall@10 against exact search** is measured at build time (and again after
:meth:`Index.add`) on up to 1000 gallery rows used as queries, themselves left out, and stored in the
sidecar. The defaults reach >= 0.95 on clustered data (what trained embeddings look like) up to 100k rows
(HNSW drops to 0.91 at 1M: raise ``ef_search``), but uniform random high-dimensional vectors have no
neighbourhood structure and get poor recall (uniform 256-d vectors in benchmarks/bench_search.py: HNSW 0.31
at 100k, 0.05 at 1M; IVF 0.10, 0.05): always read the measured figure on your data.

On disk: ``gallery.index`` (FAISS's own serialisation) and its sidecar ``gallery.index.json``
(:mod:`frpt_runtime.search.sidecar`), each written atomically, the sidecar last.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from frpt_runtime import __version__
from frpt_runtime.atomic import atomic_write, atomic_write_json
from frpt_runtime.engine_sidecar import sha256_file
from frpt_runtime.errors import FrptError
from frpt_runtime.search.faiss_module import gpu_count, import_faiss
from frpt_runtime.search.params import resolve_params
from frpt_runtime.search.sidecar import INDEX_FORMAT, checked_sha256, read_sidecar, sidecar_path

__all__ = ["RECALL_K", "Index", "RecallEstimate", "drop_excluded", "normalize_rows"]

RECALL_K = 10
RECALL_QUERIES = 1000
_SCORE_TOL = 1e-5  # float32 rounding between FAISS's batched and single-pair inner products


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows: float ``[N, D]`` -> C-contiguous float32 ``[N, D]`` (an all-zero row stays zero)."""
    rows = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.ascontiguousarray(rows / np.maximum(norms, np.float32(1e-12)))


def drop_excluded(scores: np.ndarray, rows: np.ndarray, exclude: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each query's excluded row from a ``k + 1``-wide result (else its last column).

    Args:
        scores: float32 ``[Q, k + 1]``, best first.
        rows: int64 ``[Q, k + 1]`` (``-1`` = no result).
        exclude: int64 ``[Q]``: the row to leave out of query ``q``'s result, ``-1`` for none.
        k: result width after removal.

    Returns:
        ``(scores [Q, k], rows [Q, k])`` in the same order.
    """
    count = rows.shape[0]
    match = (rows == exclude[:, None]) & (exclude[:, None] >= 0)
    drop = np.where(match.any(axis=1), match.argmax(axis=1), rows.shape[1] - 1)
    keep = np.ones(rows.shape, dtype=bool)
    keep[np.arange(count), drop] = False
    return scores[keep].reshape(count, k), rows[keep].reshape(count, k)


@dataclass(frozen=True)
class RecallEstimate:
    """Recall@k of an approximate index against exact search, measured on a sample of its own rows.

    Attributes:
        k: neighbours per query (10, or fewer in a gallery of at most 10 images).
        queries: gallery rows used as queries (each left out of its own result).
        recall: mean fraction of each query's exact top-k found; a result whose exact score ties the
            k-th exact score counts as found.
        seed: the sample's random seed.
    """

    k: int
    queries: int
    recall: float
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Index:
    """A searchable gallery: a FAISS index plus, for every row, its image path and label.

    Create with :meth:`build` or :meth:`load`; grow with :meth:`add`; write with :meth:`save`.

    Attributes:
        kind: ``flat`` | ``hnsw`` | ``ivf``.
        params: the kind's parameters (resolved: no None).
        model_sha256: hex digest of the model whose embeddings the rows are.
        paths: image path of each row (POSIX strings).
        labels: label of each row (the image's folder under its embedded root).
        recall: the last :class:`RecallEstimate` (None for ``flat``, which is exact).
    """

    def __init__(
        self,
        faiss_index: Any,
        *,
        kind: str,
        params: dict[str, int],
        model_sha256: str,
        paths: list[str],
        labels: list[str],
        recall: RecallEstimate | None,
    ) -> None:
        self._faiss: ModuleType = import_faiss()
        self._index = faiss_index
        self._searcher: Any = None
        self.kind = kind
        self.params = params
        self.model_sha256 = model_sha256
        self.paths = paths
        self.labels = labels
        self.recall = recall

    # ---- facts --------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Embedding width ``D``."""
        return int(self._index.d)

    @property
    def count(self) -> int:
        """Rows in the gallery."""
        return int(self._index.ntotal)

    @property
    def uses_gpu(self) -> bool:
        """Whether searches run on GPUs (a GPU build of FAISS with GPUs present; flat and IVF kinds only)."""
        return self.kind != "hnsw" and gpu_count(self._faiss) > 0

    # ---- construction --------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        embeddings: np.ndarray,
        paths: Sequence[str],
        labels: Sequence[str],
        model_sha256: str,
        kind: str = "flat",
        params: dict[str, int] | None = None,
        *,
        recall_queries: int = RECALL_QUERIES,
        seed: int = 0,
    ) -> Index:
        """Index ``embeddings`` (rows are L2-normalised here) and, for an approximate kind, measure its recall.

        Args:
            embeddings: float ``[N, D]``, ``N >= 1``.
            paths: ``N`` image paths, row order.
            labels: ``N`` labels, row order.
            model_sha256: hex digest of the model that produced the rows.
            kind: ``flat`` | ``hnsw`` | ``ivf``.
            params: overrides of :data:`frpt_runtime.search.params.DEFAULT_PARAMS` for ``kind``.
            recall_queries: gallery rows sampled as queries for the recall estimate.
            seed: seed of that sample.

        Returns:
            The index (not yet saved).

        Raises:
            FrptError: an unknown kind or parameter, a parameter below 1, ``nlist`` above ``N``, an empty or
                non-finite matrix, or paths/labels that do not match the row count.
        """
        faiss = import_faiss()
        rows = _checked_rows(embeddings, len(paths), len(labels))
        resolved = resolve_params(kind, params or {}, rows.shape[0])
        dim = rows.shape[1]
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, resolved["M"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = resolved["ef_construction"]
        else:
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, resolved["nlist"], faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = seed
            index.train(rows)
        index.add(rows)
        built = cls(
            index,
            kind=kind,
            params=resolved,
            model_sha256=checked_sha256(model_sha256, "model_sha256"),
            paths=list(paths),
            labels=list(labels),
            recall=None,
        )
        built.recall = built.measure_recall(rows, recall_queries, seed)
        return built

    def add(
        self,
        embeddings: np.ndarray,
        paths: Sequence[str],
        labels: Sequence[str],
        model_sha256: str,
        *,
        recall_queries: int = RECALL_QUERIES,
        seed: int = 0,
    ) -> None:
        """Append rows of the same model and width (an IVF index keeps its trained cells); re-measure recall.

        Raises:
            FrptError: another model's rows, another width, or paths/labels that do not match the row count.
        """
        self.check_model(model_sha256, "the rows to add")
        rows = _checked_rows(embeddings, len(paths), len(labels))
        if rows.shape[1] != self.dim:
            raise FrptError(f"the rows to add have D={rows.shape[1]} but the index has D={self.dim}")
        previous = self._index.reconstruct_n(0, self.count) if self.kind != "flat" else None
        self._index.add(rows)
        self._searcher = None
        self.paths.extend(paths)
        self.labels.extend(labels)
        if previous is not None:
            self.recall = self.measure_recall(np.concatenate([previous, rows]), recall_queries, seed)

    # ---- persistence ---------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index file, then its sidecar ``<path>.json``, each atomically. Returns the sidecar path."""
        target = Path(path)
        digest = hashlib.sha256()

        def write(handle: Any) -> None:
            def chunk(data: bytes) -> None:
                digest.update(data)
                handle.write(data)

            self._faiss.write_index(self._index, self._faiss.PyCallbackIOWriter(chunk))

        atomic_write(target, write)
        side = sidecar_path(target)
        atomic_write_json(side, self._sidecar(target.name, digest.hexdigest()))
        return side

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Index:
        """Read an index and its sidecar and check that they belong together.

        Raises:
            FrptError: a missing index or sidecar, a sidecar of another format or with missing fields, an index
                file whose bytes differ from the sidecar's hash (truncated, replaced), one FAISS cannot read, or
                one whose kind, dimension or row count differs from the sidecar's.
        """
        target = Path(path)
        if not target.is_file():
            raise FrptError(f"index not found: {target} (build one with frpt-index build EMB_DIR -o {target})")
        side = sidecar_path(target)
        facts = read_sidecar(side)
        if sha256_file(target) != facts["index_sha256"]:
            raise FrptError(
                f"{target} does not match the index_sha256 in {side.name} (truncated or replaced): rebuild it with "
                "frpt-index build"
            )
        faiss = import_faiss()
        try:
            index = faiss.read_index(str(target))
        except RuntimeError:
            raise FrptError(f"FAISS cannot read {target}: rebuild it with frpt-index build") from None
        expected = {"flat": "IndexFlatIP", "hnsw": "IndexHNSWFlat", "ivf": "IndexIVFFlat"}[facts["kind"]]
        found = {
            "kind": type(index).__name__ == expected,
            "dimension": int(index.d) == facts["dimension"],
            "count": int(index.ntotal) == facts["count"],
            "metric": int(index.metric_type) == int(faiss.METRIC_INNER_PRODUCT),
        }
        differ = [name for name, same in found.items() if not same]
        if differ:
            raise FrptError(f"{target} does not match {side.name} (differs in: {', '.join(differ)}): rebuild it")
        recall = facts["recall"]
        return cls(
            index,
            kind=facts["kind"],
            params=facts["params"],
            model_sha256=facts["model_sha256"],
            paths=facts["paths"],
            labels=facts["labels"],
            recall=RecallEstimate(**recall) if recall is not None else None,
        )

    def _sidecar(self, index_name: str, index_sha256: str) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "toolkit_version": __version__,
            "faiss_version": str(getattr(self._faiss, "__version__", "unknown")),
            "index_file": index_name,
            "index_sha256": index_sha256,
            "kind": self.kind,
            "metric": "cosine (inner product of L2-normalised rows)",
            "params": self.params,
            "dimension": self.dim,
            "count": self.count,
            "model_sha256": self.model_sha256,
            "recall": self.recall.to_dict() if self.recall is not None else None,
            "paths": self.paths,
            "labels": self.labels,
        }

    # ---- queries -------------------------------------------------------------------------------------
    def check_model(self, sha256: str, what: str) -> None:
        """Refuse embeddings of another model than the gallery's.

        Raises:
            FrptError: ``sha256`` differs from :attr:`model_sha256` (``what`` names the other side).
        """
        if sha256 != self.model_sha256:
            raise FrptError(
                f"{what} come from model sha256 {sha256[:12]}... but the index was built with "
                f"{self.model_sha256[:12]}...: "
                "use the model that embedded the gallery, or rebuild the index with this one"
            )

    def search(
        self, vectors: np.ndarray, k: int, exclude_rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar gallery rows of each query.

        Args:
            vectors: float ``[Q, D]`` queries (L2-normalised here).
            k: neighbours per query, ``1 <= k <= count`` (``count - 1`` with ``exclude_rows``).
            exclude_rows: int ``[Q]``: a row to leave out of each query's result (the query's own row when it is
                in the gallery), ``-1`` for none.

        Returns:
            ``(scores, rows)``: float32 ``[Q, k]`` cosines, best first, and int64 ``[Q, k]`` row numbers
            (``-1`` with score ``-inf``-like where an approximate index found fewer than ``k`` rows).

        Raises:
            FrptError: a width other than the index's, ``k`` out of range, non-finite queries.
        """
        queries = np.asarray(vectors)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise FrptError(f"queries have shape {list(queries.shape)} but the index holds D={self.dim} rows")
        if not np.isfinite(queries).all():
            raise FrptError("queries contain NaN or Inf")
        limit = self.count - (1 if exclude_rows is not None else 0)
        if not 1 <= k <= limit:
            raise FrptError(f"k={k} is out of range: the gallery has {self.count} images, so pass -k 1..{limit}")
        unit = normalize_rows(queries)
        wide = k + (1 if exclude_rows is not None else 0)
        scores, rows = self._search_engine().search(unit, wide)
        if exclude_rows is None:
            return scores, rows
        exclude = np.asarray(exclude_rows, dtype=np.int64).reshape(-1)
        if exclude.shape != (queries.shape[0],):
            raise ValueError(f"exclude_rows must be [Q]={queries.shape[0]}, got {list(exclude.shape)}")
        return drop_excluded(scores, rows, exclude, k)

    def measure_recall(
        self, vectors: np.ndarray, queries: int = RECALL_QUERIES, seed: int = 0
    ) -> RecallEstimate | None:
        """Recall@10 of this index against exact search, with a sample of the gallery as queries.

        Args:
            vectors: the gallery's own rows, float32 ``[count, D]`` L2-normalised, in row order.
            queries: how many rows to sample as queries (each excluded from its own result).
            seed: sample seed.

        Returns:
            The estimate; None for the exact ``flat`` kind, a gallery of one image, or ``queries < 1``.
        """
        count = vectors.shape[0]
        k = min(RECALL_K, count - 1)
        if self.kind == "flat" or k < 1 or queries < 1:
            return None
        sample = np.sort(np.random.default_rng(seed).choice(count, min(queries, count), replace=False))
        exact = self._faiss.IndexFlatIP(self.dim)
        exact.add(vectors)
        wide_scores, wide_rows = exact.search(vectors[sample], k + 1)
        exact_scores, _ = drop_excluded(wide_scores, wide_rows, sample.astype(np.int64), k)
        scores, rows = self.search(vectors[sample], k, exclude_rows=sample)
        found = (rows >= 0) & (scores >= exact_scores[:, k - 1 : k] - _SCORE_TOL)
        return RecallEstimate(k=k, queries=len(sample), recall=float(found.mean()), seed=seed)

    def _search_engine(self) -> Any:
        """The FAISS object searches run on: the index itself, or its copy on all GPUs (flat / IVF kinds)."""
        if self.kind == "hnsw":
            self._index.hnsw.efSearch = self.params["ef_search"]
        elif self.kind == "ivf":
            self._index.nprobe = min(self.params["nprobe"], self.params["nlist"])
        if not self.uses_gpu:
            return self._index
        if self._searcher is None:
            self._searcher = self._faiss.index_cpu_to_all_gpus(self._index)
        return self._searcher


def _checked_rows(embeddings: np.ndarray, paths: int, labels: int) -> np.ndarray:
    rows = np.asarray(embeddings)
    if rows.ndim != 2 or rows.shape[0] < 1 or rows.shape[1] < 1:
        raise FrptError(f"need a non-empty [N, D] embedding matrix, got shape {list(rows.shape)}")
    if paths != rows.shape[0] or labels != rows.shape[0]:
        raise FrptError(f"{rows.shape[0]} rows but {paths} paths and {labels} labels")
    if not np.isfinite(rows).all():
        raise FrptError("embeddings contain NaN or Inf")
    return normalize_rows(rows)
