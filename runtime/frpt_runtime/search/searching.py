"""``search_gallery(...) -> SearchReport``: the nearest gallery images of each query, and their picture.

Queries are image files, folders of images and ``frpt-embed`` outputs (:mod:`frpt_runtime.search.queries`); query
images are embedded with the same backend and pipeline code as ``frpt-embed``, and the model must be the one that
embedded the gallery (its sha256 is the index's). :func:`run_search_job` is ``frpt-search``: it opens the backend
named by the job, then calls :func:`search_gallery`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frpt_runtime.backends import create_backend
from frpt_runtime.backends.base import Backend
from frpt_runtime.errors import FrptError
from frpt_runtime.output_paths import check_output_file
from frpt_runtime.search.index import Index
from frpt_runtime.search.pictures import write_html, write_sheet
from frpt_runtime.search.queries import QuerySet, collect_queries, embed_images
from frpt_runtime.search.reports import Hit, QueryResult, SearchReport

__all__ = ["SearchJob", "run_search_job", "search_gallery"]


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
    results, matrix, skipped = _query_vectors(found, backend, index, batch, workers)
    exclude = np.array([-1 if r.gallery_row is None else r.gallery_row for r in results], np.int64)
    scores, rows = index.search(matrix, k, exclude_rows=exclude if exclude_self else None)
    _attach_hits(results, scores, rows, index)
    report = SearchReport(
        index=Path(index_path),
        kind=index.kind,
        count=index.count,
        dim=index.dim,
        recall=index.recall.to_dict() if index.recall is not None else None,
        k=k,
        exclude_self=exclude_self,
        queries=results,
        skipped=skipped,
    )
    if sheet is not None:
        report.sheet = write_sheet(report, Path(sheet))
    if html is not None:
        report.html = write_html(report, Path(html))
    return report


def _query_vectors(
    found: QuerySet, backend: Backend | None, index: Index, batch: int, workers: int
) -> tuple[list[QueryResult], np.ndarray, list[tuple[str, str]]]:
    """Every query's result stub and vector (``[Q, D]`` float32) in the order given, and the skipped images.

    Raises:
        FrptError: embeddings or a model of another model than the index's, images without a model, no
            decodable query.
    """
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
    return results, matrix, [(str(found.images[position].path), reason) for position, reason in skipped]


def _attach_hits(results: list[QueryResult], scores: np.ndarray, rows: np.ndarray, index: Index) -> None:
    """Fill each result's hits from ``index.search``'s ``[Q, k]`` scores and rows (-1: no neighbour)."""
    for result, score_row, hit_row in zip(results, scores, rows, strict=True):
        for rank, (score, row) in enumerate(zip(score_row.tolist(), hit_row.tolist(), strict=True), start=1):
            if row >= 0:
                label = index.labels[row]
                same = None if result.label is None else label == result.label
                result.hits.append(Hit(rank, score, row, index.paths[row], label, same))


@dataclass(frozen=True)
class SearchJob:
    """What ``frpt-search`` was asked to do (the model options as :func:`~frpt_runtime.backends.create_backend`)."""

    queries: tuple[Path, ...]
    index: Path
    onnx: Path | None = None
    engine: Path | None = None
    device: str = "auto"
    providers: tuple[str, ...] = ()
    plugin_lib: Path | None = None
    k: int = 10
    exclude_self: bool = False
    sheet: Path | None = None
    html: Path | None = None
    batch_size: int = 32
    workers: int = 4


def run_search_job(job: SearchJob) -> SearchReport:
    """Open the job's model (if any; not needed when every query is an ``frpt-embed`` output) and search."""
    options = dict(k=job.k, exclude_self=job.exclude_self, sheet=job.sheet, html=job.html, workers=job.workers)
    if job.onnx is None and job.engine is None:
        return search_gallery(job.queries, job.index, batch=job.batch_size, **options)
    with create_backend(
        onnx=job.onnx, engine=job.engine, providers=job.providers, device=job.device, plugin_lib=job.plugin_lib
    ) as backend:
        return search_gallery(job.queries, job.index, backend=backend, batch=job.batch_size, **options)


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
            for path, label, row in zip(embedded.paths, embedded.labels, embedded.embeddings, strict=True):
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
