"""What ``frpt-index build`` and ``frpt-search`` report: plain dataclasses with ``to_dict`` and ``format``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Hit", "IndexReport", "QueryResult", "SearchReport"]


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
