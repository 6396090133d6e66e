"""``frpt-index`` and ``frpt-search``: parse options, call :func:`~frpt_runtime.search.building.build_index` /
:func:`~frpt_runtime.search.searching.run_search_job`, print the report.

Results go to stdout (``--json`` for machines), logs to stderr. A user error prints one line on stderr and exits 2
(traceback with ``--debug``); a missing FAISS names the ``[search]`` extra.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from frpt_runtime.cli_common import (
    BatchSizeOpt,
    DebugOpt,
    DeviceOpt,
    EngineOpt,
    JsonOpt,
    OnnxOpt,
    PluginLibOpt,
    ProvidersOpt,
    VersionOpt,
    emit_report,
    make_app,
    out_option,
    run_command,
    split_providers,
)
from frpt_runtime.contract import StrChoice
from frpt_runtime.errors import FrptError
from frpt_runtime.search.params import KINDS

__all__ = ["index_app", "search_app"]

IndexKind = StrChoice("IndexKind", {name: name for name in KINDS})

INDEX_EXAMPLE = (
    "Examples: frpt-index build emb/ -o gallery.index ;  frpt-index build emb/ more_emb/ -o big.index --kind hnsw ;  "
    "frpt-index build new_emb/ -o gallery.index --add"
)
SEARCH_EXAMPLE = (
    "Examples: frpt-search photo.jpg --index gallery.index --onnx model.onnx -k 10 --sheet results.png ;  "
    "frpt-search emb/ --index gallery.index --exclude-self --html results.html"
)

index_app = make_app(
    "frpt-index",
    help="Nearest-neighbour index over frpt-embed outputs (FAISS, no torch needed).",
    epilog=INDEX_EXAMPLE,
    group=True,
)
search_app = make_app("frpt-search", help="Find the gallery images most like the query images (no torch needed).")


def _params(items: list[str] | None) -> dict[str, int]:
    """``--param NAME=INT`` (repeatable) -> ``{name: value}``."""
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
    out: Annotated[Path, out_option("Index file to write (sidecar: <file>.json).")],
    kind: Annotated[
        IndexKind | None,
        typer.Option("--kind", help="flat: exact (default); hnsw / ivf: approximate, recall measured at build."),
    ] = None,
    param: Annotated[
        list[str] | None,
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
    version: VersionOpt = False,
) -> None:
    """Index EMB_DIR... (float32 rows, cosine) and print the index's recall@10 against exact search."""

    def body() -> int:
        from frpt_runtime.search.building import build_index

        kind_name = None if kind is None else kind.value
        report = build_index(
            embedding_dirs, out, kind=kind_name, params=_params(param), add=add, recall_queries=recall_queries
        )
        return emit_report(report, as_json, "frpt-index build")

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
        Path | None, typer.Option("--sheet", help="PNG: per query its thumbnail, then the top k with scores.")
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", help="HTML page of the same, linking the images.")] = None,
    batch_size: BatchSizeOpt = 32,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Decode threads.")] = min(4, os.cpu_count() or 1),
    device: DeviceOpt = "auto",
    providers: ProvidersOpt = None,
    plugin_lib: PluginLibOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
    version: VersionOpt = False,
) -> None:
    """Search QUERY... in the index; the model (--onnx / --engine) must be the one that embedded the gallery."""

    def body() -> int:
        from frpt_runtime.search.searching import SearchJob, run_search_job

        job = SearchJob(
            tuple(queries), index, onnx, engine, device, split_providers(providers), plugin_lib, k, exclude_self,
            sheet, html, batch_size, workers,
        )  # fmt: skip
        return emit_report(run_search_job(job), as_json, "frpt-search")

    run_command(debug, body)
