"""``frpt-embed`` and ``frpt-verify``: parse options, call :func:`~frpt_runtime.embed_job.run_embed_job` /
:func:`~frpt_runtime.verify.verify_file`, print the report.

Results go to stdout (``--json`` for machines), progress and logs to stderr. A user error prints one line on
stderr and exits 2 (traceback with ``--debug``); a failed parity check exits 1; Ctrl-C exits 130.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from frpt_runtime.cli_common import (
    BatchSizeOpt,
    BundleOpt,
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

__all__ = ["embed_app", "verify_app"]


embed_app = make_app(
    "frpt-embed", help="Embed an image folder with a TensorRT engine or an ONNX export (no torch needed)."
)
EMBED_EXAMPLE = "Example: frpt-embed photos/ --onnx model.onnx --batch-size 32 -o emb/ --verify"
verify_app = make_app("frpt-verify", help="Prove a model's parity with PyTorch on this box from its reference bundle.")
VERIFY_EXAMPLE = "Example: frpt-verify model.plan --bundle model.ref.npz"


@embed_app.command(no_args_is_help=True, epilog=EMBED_EXAMPLE)
def embed(
    images_dir: Annotated[Path, typer.Argument(help="Folder of images, walked recursively.")],
    onnx: OnnxOpt = None,
    engine: EngineOpt = None,
    batch_size: BatchSizeOpt = 32,
    out: Annotated[Path, out_option("Output folder for embeddings.npy + manifest.json.")] = Path("embeddings"),
    workers: Annotated[int, typer.Option("--workers", help="Decode threads.")] = min(4, os.cpu_count() or 1),
    device: DeviceOpt = "auto",
    providers: ProvidersOpt = None,
    plugin_lib: PluginLibOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --out.")] = False,
    follow_symlinks: Annotated[
        bool,
        typer.Option("--follow-symlinks", help="Follow symlinked folders and symlinks leaving IMAGES_DIR."),
    ] = False,
    verify: Annotated[bool, typer.Option("--verify", help="First prove parity on the reference bundle.")] = False,
    bundle: BundleOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
    version: VersionOpt = False,
) -> None:
    """Embed IMAGES_DIR: writes OUT/embeddings.npy (float32 [M, D]), OUT/manifest.json and OUT/run.json."""

    def body() -> int:
        from frpt_runtime.embed_job import EmbedJob, run_embed_job

        job = EmbedJob(
            images_dir, onnx, engine, out, batch_size, workers, device, split_providers(providers), plugin_lib, resume,
            verify, bundle, follow_symlinks,
        )  # fmt: skip
        return emit_report(run_embed_job(job), as_json, "frpt-embed")

    run_command(debug, body, interrupted=f"interrupted: finished batches are kept in {out}; continue with --resume")


@verify_app.command(no_args_is_help=True, epilog=VERIFY_EXAMPLE)
def verify(
    model: Annotated[Path, typer.Argument(help="model.onnx (ONNX Runtime) or model.plan (TensorRT).")],
    bundle: BundleOpt = None,
    device: DeviceOpt = "auto",
    providers: ProvidersOpt = None,
    plugin_lib: PluginLibOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
    version: VersionOpt = False,
) -> None:
    """Run MODEL on its reference bundle and print the parity report; exit 1 when it fails."""

    def body() -> int:
        from frpt_runtime.verify import verify_file

        report = verify_file(model, bundle, device=device, providers=split_providers(providers), plugin_lib=plugin_lib)
        return emit_report(report, as_json, "frpt-verify")

    run_command(debug, body)
