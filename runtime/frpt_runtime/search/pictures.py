"""Pictures of search results: a PNG contact sheet and an HTML page with the same layout.

One row per query: the query's thumbnail (blue frame), a gap, then its top-k neighbours, each framed
**green** when its label (gallery folder) equals the query's, **red** when it differs and **grey** when the
query has no label, with rank, cosine score and ``label/file name`` underneath. A two-line header names the
index (file, kind, size, width, k) and the colour code. Geometry is fixed by :class:`SheetLayout` (a pure
function of rows, k and the thumbnail side); thumbnails are centre-cropped squares; an unreadable image
becomes a grey tile saying so. The sheet draws at most :data:`SHEET_MAX_ROWS` queries (the header says
so); the HTML page lists every query, linking each image by its path relative to the page's folder.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from PIL import Image, ImageDraw, ImageFont, ImageOps

from frpt_runtime.atomic import atomic_write

if TYPE_CHECKING:
    from frpt_runtime.search import SearchReport

__all__ = [
    "GREEN",
    "GREY",
    "QUERY_BLUE",
    "RED",
    "SHEET_MAX_ROWS",
    "SheetLayout",
    "border_colour",
    "write_html",
    "write_sheet",
]

THUMB = 112
BORDER = 4
PAD = 8
GAP = 16  # extra space between the query and its neighbours
TEXT_H = 30  # two lines of text under each thumbnail
HEADER_H = 40  # two lines of header
MIN_WIDTH = 560  # room for the header when k is small
FONT_SIZE = 12
SHEET_MAX_ROWS = 100

GREEN = (0, 160, 60)
RED = (220, 30, 30)
GREY = (150, 150, 150)
QUERY_BLUE = (30, 100, 220)
_BACKGROUND = (255, 255, 255)
_INK = (20, 20, 20)
_LEGEND = "frame: green = same label as the query, red = other label, grey = query has no label"


def border_colour(same_label: bool | None) -> tuple[int, int, int]:
    """Frame colour of a neighbour: green (same label), red (other label), grey (query without label)."""
    return GREY if same_label is None else GREEN if same_label else RED


@dataclass(frozen=True)
class SheetLayout:
    """Geometry of a sheet with ``rows`` queries and ``k`` neighbours each (pixels; column 0 is the query).

    Attributes:
        rows: query rows drawn.
        k: neighbour columns.
        thumb: thumbnail side.
    """

    rows: int
    k: int
    thumb: int = THUMB

    @property
    def cell_width(self) -> int:
        return self.thumb + 2 * BORDER

    @property
    def cell_height(self) -> int:
        return self.thumb + 2 * BORDER + TEXT_H

    def x(self, col: int) -> int:
        """Left edge of column ``col``'s frame."""
        return PAD + col * (self.cell_width + PAD) + (GAP if col > 0 else 0)

    def y(self, row: int) -> int:
        """Top edge of row ``row``'s frame."""
        return HEADER_H + PAD + row * (self.cell_height + PAD)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the PNG."""
        return max(MIN_WIDTH, self.x(self.k) + self.cell_width + PAD), self.y(self.rows)

    def frame(self, row: int, col: int) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` of a frame, inclusive; the thumbnail sits ``BORDER`` px inside."""
        left, top = self.x(col), self.y(row)
        return left, top, left + self.cell_width - 1, top + self.cell_width - 1


def write_sheet(report: SearchReport, path: Path, thumb: int = THUMB) -> Path:
    """Draw the contact sheet of ``report`` and write it atomically as PNG to ``path``. Returns ``path``."""
    queries = report.queries[:SHEET_MAX_ROWS]
    layout = SheetLayout(rows=len(queries), k=report.k, thumb=thumb)
    sheet = Image.new("RGB", layout.size, _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=FONT_SIZE)
    width = layout.size[0] - 2 * PAD
    shown = f" (first {len(queries)} of {len(report.queries)} queries)" if len(queries) < len(report.queries) else ""
    title = (
        f"frpt-search  {report.index.name}: {report.kind}, {report.count} images, D={report.dim}, "
        f"top {report.k}{', self excluded' if report.exclude_self else ''}{shown}"
    )
    draw.text((PAD, 6), _fit(draw, title, font, width), fill=_INK, font=font)
    draw.text((PAD, 6 + FONT_SIZE + 6), _fit(draw, _LEGEND, font, width), fill=_INK, font=font)
    cache: dict[str, Image.Image] = {}
    for row, query in enumerate(queries):
        label = query.label if query.label is not None else "(no label)"
        _cell(
            sheet,
            draw,
            font,
            layout,
            row,
            0,
            _thumb(query.path, thumb, cache),
            QUERY_BLUE,
            f"query: {label}",
            Path(query.path).name,
        )
        for hit in query.hits:
            _cell(
                sheet,
                draw,
                font,
                layout,
                row,
                hit.rank,
                _thumb(hit.path, thumb, cache),
                border_colour(hit.same_label),
                f"#{hit.rank}  {hit.score:.4f}",
                f"{hit.label}/{Path(hit.path).name}",
            )
    atomic_write(path, lambda handle: sheet.save(handle, format="PNG"))
    return path


def write_html(report: SearchReport, path: Path, thumb: int = THUMB) -> Path:
    """Write an HTML page of ``report`` (images linked relative to ``path``'s folder) atomically; return ``path``."""
    folder = Path(os.path.abspath(path)).parent

    def link(image: str) -> str:
        return html.escape(quote(Path(os.path.relpath(os.path.abspath(image), folder)).as_posix()))

    def cell(image: str, colour: tuple[int, int, int], top: str, bottom: str) -> str:
        src = link(image)
        return (
            f'<td><a href="{src}"><img src="{src}" style="border-color:{_hex(colour)}" alt=""></a>'
            f"<div>{html.escape(top)}</div><div class=name>{html.escape(bottom)}</div></td>"
        )

    rows = []
    for query in report.queries:
        label = query.label if query.label is not None else "(no label)"
        cells = [cell(query.path, QUERY_BLUE, f"query: {label}", Path(query.path).name), '<td class="gap"></td>']
        cells += [
            cell(
                hit.path,
                border_colour(hit.same_label),
                f"#{hit.rank}  {hit.score:.4f}",
                f"{hit.label}/{Path(hit.path).name}",
            )
            for hit in query.hits
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    title = (
        f"frpt-search: {report.index.name} ({report.kind}, {report.count} images, D={report.dim}), top {report.k}"
        + (", self excluded" if report.exclude_self else "")
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 13px sans-serif; color: #141414; }}
td {{ vertical-align: top; text-align: center; padding: 4px; max-width: {thumb + 2 * BORDER}px; }}
td.gap {{ width: {GAP}px; }}
img {{ width: {thumb}px; height: {thumb}px; object-fit: cover; border: {BORDER}px solid; display: block; }}
.name {{ font-size: 11px; overflow-wrap: anywhere; }}
</style></head>
<body><h3>{html.escape(title)}</h3><p>{html.escape(_LEGEND)}</p>
<table>
{chr(10).join(rows)}
</table></body></html>
"""
    atomic_write(path, lambda handle: handle.write(page.encode("utf-8")))
    return path


def _hex(colour: tuple[int, int, int]) -> str:
    return "#" + "".join(f"{channel:02x}" for channel in colour)


def _cell(
    sheet: Image.Image,
    draw: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    layout: SheetLayout,
    row: int,
    col: int,
    picture: Image.Image,
    colour: tuple[int, int, int],
    top: str,
    bottom: str,
) -> None:
    left, upper, right, lower = layout.frame(row, col)
    draw.rectangle((left, upper, right, lower), fill=colour)
    sheet.paste(picture, (left + BORDER, upper + BORDER))
    width = layout.cell_width
    draw.text((left, lower + 3), _fit(draw, top, font, width), fill=_INK, font=font)
    draw.text((left, lower + 3 + FONT_SIZE + 2), _fit(draw, bottom, font, width), fill=_INK, font=font)


def _thumb(path: str, side: int, cache: dict[str, Image.Image]) -> Image.Image:
    """A ``side``-px centre-cropped square of the image at ``path`` (a grey tile when it cannot be read)."""
    if path not in cache:
        try:
            with Image.open(path) as image:
                image.draft("RGB", (side, side))
                rgb = ImageOps.exif_transpose(image).convert("RGB")
            cache[path] = ImageOps.fit(rgb, (side, side), Image.Resampling.BICUBIC)
        except Exception:  # noqa: BLE001 - any unreadable file (missing, corrupt, bomb) is drawn, not fatal
            tile = Image.new("RGB", (side, side), (225, 225, 225))
            ImageDraw.Draw(tile).text((6, side // 2 - 6), "unreadable", fill=_INK)
            cache[path] = tile
    return cache[path]


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    """``text`` cut (ending in ``..``) to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "..", font=font) > width:
        text = text[:-1]
    return text + ".."
