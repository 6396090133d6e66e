"""Retrieval over ``frpt-embed`` outputs: ``build_index(...) -> IndexReport`` and ``search_gallery(...) ->
SearchReport`` (the libraries behind ``frpt-index build`` and ``frpt-search``).

The index itself is :class:`frpt_runtime.index.Index` (FAISS; exact ``flat``, approximate ``hnsw`` / ``ivf``
with their recall against exact search measured at build time); queries are read by
:mod:`frpt_runtime.queries`; the picture of the results by :mod:`frpt_runtime.contact_sheet`.

Python use::

    from frpt_runtime.index import Index
    index = Index.load("gallery.index")
    scores, rows = index.search(vectors, k=10)          # float32 [Q, 10] cosines, int64 [Q, 10] rows
    print(index.paths[rows[0, 0]], index.labels[rows[0, 0]])
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frpt.errors import FrptError
from frpt.output_paths import check_output_file
from frpt_runtime.backends.base import Backend
from frpt_runtime.contact_sheet import write_html, write_sheet
from frpt_runtime.embedding_set import EmbeddingSet, read_embedding_set
from frpt_runtime.index import Index
from frpt_runtime.queries import QuerySet, collect_queries, embed_images

__all__ = ["Hit", "IndexReport", "QueryResult", "SearchReport", "build_index", "search_gallery"]


@dataclass
class IndexReport:
    """Outcome of :func:`build_index`.

    Attributes:
        index: the index file written; sidecar: its ``<index>.json``.
        kind, params: what was built.
        count: rows in the index now; added: rows this call added.
        dim: embedding width.
        recall: recall@k vs exact (``RecallEstimate.to_dict()``), None for the exact ``flat`` kind.
        wall_s: seconds from reading the embeddings to the last write.
    """

    index: Path
    sidecar: Path
    kind: str
    params: dict[str, int]
    count: int
    added: int
    dim: int
    recall: dict[str, Any] | None
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(index=str(self.index), sidecar=str(self.sidecar))
        return data

    def format(self) -> str:
        params = " ".join(f"{name}={value}" for name, value in self.params.items())
        verb = f"added {self.added} images to" if self.added != self.count else f"indexed {self.count} images in"
        lines = [
            f"{verb} {self.index} ({self.kind}{' ' + params if params else ''}, {self.count} images, D={self.dim}) "
            f"in {self.wall_s:.2f} s; sidecar {self.sidecar}"
        ]
        if self.recall is None:
            lines.append("exact search (flat): every query gets its true nearest neighbours")
        else:
            lines.append(
                f"recall@{self.recall['k']} vs exact search: {self.recall['recall']:.4f} on {self.recall['queries']} "
                "gallery images as queries (each left out of its own result); check it on your data"
            )
        return "\n".join(lines)


@dataclass
class Hit:
    """One neighbour: its rank (1 = best), cosine score, gallery row, image path and label; ``same_label`` is
    None when the query has no label."""

    rank: int
    score: float
    row: int
    path: str
    label: str
    same_label: bool | None


@dataclass
class QueryResult:
    """One query: the image (as given), its label (None: unknown), its gallery row if it is a gallery image,
    and its neighbours best first."""

    path: str
    label: str | None
    gallery_row: int | None
    hits: list[Hit] = field(default_factory=list)


@dataclass
class SearchReport:
    """Outcome of :func:`search_gallery`: the index searched, the results per query, skipped query files.

    Attributes:
        index: the index file; kind, count, dim: its facts; recall: its measured recall (None for flat).
        k: neighbours per query; exclude_self: whether a query's own gallery row was left out.
        queries: per query, in the order given.
        skipped: ``(path, reason)`` of query files that could not be decoded.
        sheet, html: the pictures written (None: not asked for).
    """

    index: Path
    kind: str
    count: int
    dim: int
    recall: dict[str, Any] | None
    k: int
    exclude_self: bool
    queries: list[QueryResult]
    skipped: list[tuple[str, str]]
    sheet: Path | None = None
    html: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            index=str(self.index),
            skipped=[list(item) for item in self.skipped],
            sheet=str(self.sheet) if self.sheet else None,
            html=str(self.html) if self.html else None,
        )
        return data

    def format(self) -> str:
        """Per query a table: rank, score, path, label; then the skipped files and the pictures written."""
        lines = [f"index {self.index}: {self.kind}, {self.count} images, D={self.dim}, k={self.k}"]
        for query in self.queries:
            lines.append("")
            lines.append(f"query {query.path}" + (f"  (label {query.label})" if query.label is not None else ""))
            width = max([len("path"), *(len(hit.path) for hit in query.hits)])
            lines.append(f"{'rank':>4}  {'score':>7}  {'path':<{width}}  label")
            lines += [f"{h.rank:>4}  {h.score:7.4f}  {h.path:<{width}}  {h.label}" for h in query.hits]
        if self.skipped:
            lines += ["", f"skipped {len(self.skipped)} query files:"]
            lines += [f"  {path}: {reason}" for path, reason in self.skipped]
        lines += [f"wrote {picture}" for picture in (self.sheet, self.html) if picture is not None]
        return "\n".join(lines)


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
        params: the kind's parameters (see :data:`frpt_runtime.index.DEFAULT_PARAMS`); not with ``add``.
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
    check_output_file(target, "-o")
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
    rows = np.concatenate([item.embeddings for item in sets])
    paths = [path for item in sets for path in item.paths]
    labels = [label for item in sets for label in item.labels]
    if add:
        if params:
            raise FrptError("--add keeps the index's parameters: drop --param, or rebuild without --add")
        index = Index.load(target)
        if kind is not None and kind != index.kind:
            raise FrptError(f"--add to a {index.kind} index: drop --kind {kind} (or rebuild without --add)")
        _refuse_duplicates(sets, paths, set(index.paths))
        index.add(rows, paths, labels, first.model_sha256, recall_queries=recall_queries, seed=seed)
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


def search_gallery(
    queries: Sequence[str | os.PathLike[str]],
    index_path: str | os.PathLike[str],
    *,
    backend: Backend | None = None,
    k: int = 10,
    exclude_self: bool = False,
    sheet: str | os.PathLike[str] | None = None,
    html: str | os.PathLike[str] | None = None,
    batch: int = 32,
    workers: int = 4,
) -> SearchReport:
    """The ``k`` nearest gallery images of each query, and optionally their picture.

    Args:
        queries: image files, folders of images (recursive) and/or ``frpt-embed`` output folders.
        index_path: an index written by :func:`build_index`.
        backend: the model that embeds query images (its sha256 must be the index's); may be None when every
            query is an ``frpt-embed`` output.
        k: neighbours per query.
        exclude_self: leave a query's own gallery row out of its result (for queries taken from the gallery).
        sheet: PNG contact sheet to write (one row per query: the query, then its neighbours with scores and
            a green / red / grey border for same / other / unknown label).
        html: HTML page to write with the same layout, linking the images by paths relative to the page.
        batch: images per model call.
        workers: decode threads.

    Returns:
        The :class:`SearchReport`.

    Raises:
        FrptError: an unwritable picture path, a bad index, a query path that does not exist, a model or an
            ``frpt-embed`` output of another model than the index's, image queries without a model, no
            decodable query, or ``k`` out of range.
    """
    for picture, option in ((sheet, "--sheet"), (html, "--html")):
        if picture is not None:
            check_output_file(Path(picture), option)
    index = Index.load(index_path)
    found = collect_queries(queries)
    for embedded in found.embedded:
        index.check_model(embedded.model_sha256, f"the embeddings in {embedded.folder}")
    vectors: np.ndarray = np.empty((0, index.dim), np.float32)
    kept: list[int] = []
    skipped: list[tuple[int, str]] = []
    if backend is not None:
        info = backend.activate().info
        index.check_model(info.sha256, f"embeddings of {info.path.name}")
    if found.images:
        if backend is None:
            raise FrptError("query images need the model to embed them: pass --onnx MODEL.onnx or --engine MODEL.plan")
        files = [item.path for item in found.images]
        kept, vectors, skipped = embed_images(files, backend, batch=batch, workers=workers)
    rows_of = {path: row for row, path in enumerate(index.paths)}
    results, matrix = _assemble(found, kept, vectors, index, rows_of)
    if not results:
        path, reason = found.images[skipped[0][0]].path, skipped[0][1]
        raise FrptError(f"none of the {len(found.images)} query images could be decoded (e.g. {path}: {reason})")
    exclude = np.array([-1 if r.gallery_row is None else r.gallery_row for r in results], np.int64)
    scores, rows = index.search(matrix, k, exclude_rows=exclude if exclude_self else None)
    for result, score_row, hit_row in zip(results, scores, rows):
        for rank, (score, row) in enumerate(zip(score_row.tolist(), hit_row.tolist()), start=1):
            if row >= 0:
                label = index.labels[row]
                same = None if result.label is None else label == result.label
                result.hits.append(Hit(rank, score, row, index.paths[row], label, same))
    report = SearchReport(
        index=Path(index_path),
        kind=index.kind,
        count=index.count,
        dim=index.dim,
        recall=index.recall.to_dict() if index.recall is not None else None,
        k=k,
        exclude_self=exclude_self,
        queries=results,
        skipped=[(str(found.images[position].path), reason) for position, reason in skipped],
    )
    if sheet is not None:
        report.sheet = write_sheet(report, Path(sheet))
    if html is not None:
        report.html = write_html(report, Path(html))
    return report


def _gallery_row(path: Path | str, rows_of: dict[str, int]) -> int | None:
    """The gallery row of an image file, matched by absolute path (as given, then with symlinks resolved)."""
    for candidate in (os.path.abspath(path), Path(path).resolve()):
        row = rows_of.get(Path(candidate).as_posix())
        if row is not None:
            return row
    return None


def _assemble(
    found: QuerySet, kept: list[int], vectors: np.ndarray, index: Index, rows_of: dict[str, int]
) -> tuple[list[QueryResult], np.ndarray]:
    """Queries in the order given, each with its label and gallery row, and their ``[Q, D]`` matrix."""
    row_of_position = {position: i for i, position in enumerate(kept)}
    results: list[QueryResult] = []
    parts: list[np.ndarray] = []
    for source, start, stop in found.order:
        if source == "embedded":
            embedded = found.embedded[start]
            for path, label, row in zip(embedded.paths, embedded.labels, embedded.embeddings):
                gallery_row = _gallery_row(path, rows_of)
                results.append(QueryResult(path, _label(label, gallery_row, index), gallery_row))
                parts.append(row[None])
            continue
        for position in range(start, stop):
            if position in row_of_position:
                item = found.images[position]
                gallery_row = _gallery_row(item.path, rows_of)
                label = index.labels[gallery_row] if gallery_row is not None else item.label
                results.append(QueryResult(str(item.path), label, gallery_row))
                parts.append(vectors[row_of_position[position]][None])
    matrix = np.concatenate(parts) if parts else np.empty((0, index.dim), np.float32)
    return results, matrix


def _label(own: str, gallery_row: int | None, index: Index) -> str | None:
    """An ``frpt-embed`` row's label: the gallery's when it is a gallery image, else its folder (``.``: none)."""
    if gallery_row is not None:
        return index.labels[gallery_row]
    return None if own == "." else own
