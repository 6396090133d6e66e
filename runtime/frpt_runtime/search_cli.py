"""``frpt-index`` and ``frpt-search``: thin typer front-ends over :mod:`frpt_runtime.search`.

Results go to stdout (``--json`` for machines), logs to stderr. A :class:`FrptError` prints one line on
stderr and exits 2 (traceback with ``--debug``).
"""

from __future__ import annotations

import json
import os
from contextlib import closing, nullcontext
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from frpt.cli_common import DebugOpt, JsonOpt, make_app, run_command
from frpt.errors import FrptError
from frpt_runtime.cli import DeviceOpt, EngineOpt, OnnxOpt, PluginOpt, ProvidersOpt, _providers
from frpt_runtime.index_params import KINDS

__all__ = ["index_app", "search_app"]

IndexKind = Enum("IndexKind", {name: name for name in KINDS}, type=str)  # type: ignore[misc]

INDEX_EXAMPLE = (
    "Examples: frpt-index build emb/ -o gallery.index ;  frpt-index build emb/ more_emb/ -o big.index --kind hnsw ;  "
    "frpt-index build new_emb/ -o gallery.index --add"
)
SEARCH_EXAMPLE = (
    "Examples: frpt-search photo.jpg --index gallery.index --onnx model.onnx -k 10 --sheet results.png ;  "
    "frpt-search emb/ --index gallery.index --exclude-self --html results.html"
)

index_app = make_app(
    "frpt-index", help="Nearest-neighbour index over frpt-embed outputs (FAISS, no torch needed).", epilog=INDEX_EXAMPLE
)
search_app = make_app("frpt-search", help="Find the gallery images most like the query images (no torch needed).")


@index_app.callback()
def _index_group() -> None:
    """Nearest-neighbour index over frpt-embed outputs (FAISS, no torch needed)."""


def _params(items: list[str] | None) -> dict[str, int]:
    params: dict[str, int] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not value.strip().lstrip("-").isdigit():
            raise FrptError(f"--param {item!r}: expected NAME=INTEGER, e.g. --param ef_search=256")
        params[name.strip()] = int(value)
    return params


@index_app.command("build", no_args_is_help=True, epilog=INDEX_EXAMPLE)
def build(
    embedding_dirs: Annotated[
        list[Path], typer.Argument(metavar="EMB_DIR", help="frpt-embed output folders (one model).")
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Index file to write (sidecar: <file>.json).")],
    kind: Annotated[
        Optional[IndexKind],
        typer.Option("--kind", help="flat: exact (default); hnsw / ivf: approximate, recall measured at build."),
    ] = None,
    param: Annotated[
        Optional[list[str]],
        typer.Option(
            "--param",
            metavar="NAME=INT",
            help="Kind parameter, repeatable: hnsw M, ef_construction, ef_search; ivf nlist, nprobe.",
        ),
    ] = None,
    add: Annotated[bool, typer.Option("--add", help="Append to the existing index at -o (same model).")] = False,
    recall_queries: Annotated[
        int, typer.Option("--recall-queries", min=0, help="Gallery images used to measure recall vs exact.")
    ] = 1000,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Index EMB_DIR... (float32 rows, cosine) and print the index's recall@10 against exact search."""

    def body() -> None:
        from frpt_runtime.search import build_index

        report = build_index(
            embedding_dirs,
            out,
            kind=kind.value if kind is not None else None,
            params=_params(param),
            add=add,
            recall_queries=recall_queries,
        )
        typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format())

    run_command(debug, body)


@search_app.command(no_args_is_help=True, epilog=SEARCH_EXAMPLE)
def search(
    queries: Annotated[
        list[Path],
        typer.Argument(metavar="QUERY", help="Image files, folders of images, or frpt-embed output folders."),
    ],
    index: Annotated[Path, typer.Option("--index", help="Index written by frpt-index build.")],
    onnx: OnnxOpt = None,
    engine: EngineOpt = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Neighbours per query.")] = 10,
    exclude_self: Annotated[
        bool, typer.Option("--exclude-self", help="Leave a query that is a gallery image out of its own result.")
    ] = False,
    sheet: Annotated[
        Optional[Path], typer.Option("--sheet", help="PNG: per query its thumbnail, then the top k with scores.")
    ] = None,
    html: Annotated[Optional[Path], typer.Option("--html", help="HTML page of the same, linking the images.")] = None,
    batch: Annotated[int, typer.Option("--batch", help="Query images per model call.")] = 32,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Decode threads.")] = min(4, os.cpu_count() or 1),
    device: DeviceOpt = 0,
    providers: ProvidersOpt = None,
    plugin_lib: PluginOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Search QUERY... in the index; the model (--onnx / --engine) must be the one that embedded the gallery."""

    def body() -> None:
        from frpt_runtime.backends import create_backend
        from frpt_runtime.search import search_gallery

        backend = None
        if onnx is not None or engine is not None:
            backend = create_backend(
                onnx=onnx, engine=engine, providers=_providers(providers), device=device, plugin_lib=plugin_lib
            )
        with closing(backend) if backend is not None else nullcontext():
            report = search_gallery(
                queries, index, backend=backend, k=k, exclude_self=exclude_self, sheet=sheet, html=html,
                batch=batch, workers=workers,
            )
        typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format())

    run_command(debug, body)
