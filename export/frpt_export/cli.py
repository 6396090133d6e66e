"""``frpt-export``: ``onnx`` (checkpoint -> ONNX + reference bundle), ``parity`` (live PyTorch vs ONNX Runtime),
``trt`` (ONNX or checkpoint -> TensorRT plan + sidecar).

Each command parses its options and calls one library function (:func:`~frpt_export.onnx_export.export_onnx`,
:func:`~frpt_export.reference.live_parity`, :func:`~frpt_export.trt_job.run_trt_job`); heavy modules (torch,
onnx, onnxruntime, tensorrt) are imported inside the commands so ``--help`` is instant and a missing optional
dependency disables one command with a message naming the extra to install. Results go to stdout (``--json``
for machines), progress to stderr. A user error prints one line on stderr and exits 2 (traceback with
``--debug``); a failed parity check exits 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from frpt_runtime.cli_common import (
    DebugOpt,
    JsonOpt,
    PluginLibOpt,
    VersionOpt,
    emit_report,
    make_app,
    out_option,
    run_command,
)
from frpt_runtime.contract import DEFAULT_OPSET, SUPPORTED_OPSETS, Lowering, Precision

__all__ = ["app"]

CkptOpt = Annotated[Path | None, typer.Option("--ckpt", help="Checkpoint written by frpt-train.")]
LoweringOpt = Annotated[
    Lowering,
    typer.Option(
        "--lowering",
        help="standard: plain ONNX ops; plugin (FRPT only): DPP's warp as one frpt::InhomogeneousSample node.",
    ),
]
SaliencyOpt = Annotated[
    Precision | None,
    typer.Option(
        "--saliency-precision",
        help="fp16 FRPT graphs only: the saliency pass (backbone to the tap + parser) in fp32 (default: the DPP warp "
        "amplifies fp16 error) or fp16 (faster; check parity).",
    ),
]

app = make_app(
    "frpt-export",
    help="Export checkpoints to ONNX and TensorRT engines, with parity against PyTorch.",
    epilog="Example: frpt-export onnx --ckpt model.pt -o model.onnx --precision fp16 && "
    "frpt-export trt --onnx model.onnx --max-batch 64",
    group=True,
)


def _log(message: str) -> None:
    typer.echo(message, err=True)


@app.command(
    no_args_is_help=True, epilog="Example: frpt-export onnx --ckpt frpt.pt -o model.fp16.onnx --precision fp16"
)
def onnx(
    ckpt: CkptOpt = None,
    out: Annotated[Path, out_option("ONNX file to write (model.ref.npz and Polygraphy files beside it).")] = Path(
        "model.onnx"
    ),
    lowering: LoweringOpt = Lowering.standard,
    precision: Annotated[
        Precision, typer.Option("--precision", help="fp16: convolutions/matmuls in half, delicate steps in float32.")
    ] = Precision.fp32,
    saliency_precision: SaliencyOpt = None,
    opset: Annotated[
        int,
        typer.Option(
            "--opset",
            min=SUPPORTED_OPSETS[0],
            max=SUPPORTED_OPSETS[-1],
            help="ONNX opset (GridSample needs >= 16; 20+ misparses in TensorRT).",
        ),
    ] = (DEFAULT_OPSET),
    ref_images: Annotated[
        Path | None,
        typer.Option("--ref-images", help="Folder of reference images for the bundle (default: bundled photos)."),
    ] = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
    version: VersionOpt = False,
) -> None:
    """Export a checkpoint to ONNX (uint8 NHWC images -> L2-normalised embedding) with its reference bundle."""

    def body() -> int:
        from frpt_export.graph import LowerOptions
        from frpt_export.onnx_export import export_onnx
        from frpt_runtime.errors import FrptError

        if ckpt is None:
            raise FrptError("--ckpt is required: the checkpoint to export")
        _log(f"exporting {ckpt} -> {out} ({lowering} lowering, {precision}, opset {opset}) ...")
        return emit_report(
            export_onnx(ckpt, out, LowerOptions(lowering, precision, saliency_precision), opset, ref_images), as_json
        )

    run_command(debug, body)


@app.command(
    no_args_is_help=True, epilog="Example: frpt-export parity --ckpt frpt.pt --onnx model.onnx --images photos/"
)
def parity(
    ckpt: CkptOpt = None,
    onnx_path: Annotated[Path | None, typer.Option("--onnx", help="Exported ONNX file to check.")] = None,
    images: Annotated[
        Path | None, typer.Option("--images", help="Image folder (default: the bundle's images beside the ONNX file).")
    ] = None,
    max_images: Annotated[
        int, typer.Option("--max-images", min=1, help="Use at most this many images of --images.")
    ] = 64,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
    version: VersionOpt = False,
) -> None:
    """Live parity: PyTorch (from the checkpoint, now) vs ONNX Runtime CPU on the same images."""

    def body() -> int:
        from frpt_export.reference import live_parity
        from frpt_runtime.errors import FrptError

        if ckpt is None or onnx_path is None:
            raise FrptError("both --ckpt and --onnx are required")
        _log(f"comparing PyTorch ({ckpt}) and ONNX Runtime ({onnx_path}) ...")
        return emit_report(live_parity(ckpt, onnx_path, images, max_images), as_json)

    run_command(debug, body)


@app.command(
    no_args_is_help=True, epilog="Example: frpt-export trt --onnx model.fp16.onnx -o model.plan --max-batch 32"
)
def trt(
    onnx_path: Annotated[Path | None, typer.Option("--onnx", help="Exported ONNX graph to build.")] = None,
    ckpt: CkptOpt = None,
    fp16: Annotated[
        bool, typer.Option("--fp16", help="Build from the fp16 graph (exported on the fly from --ckpt if needed).")
    ] = False,
    out: Annotated[Path | None, out_option("Engine to write (default: beside the ONNX, .plan).")] = None,
    lowering: Annotated[
        Lowering | None, typer.Option("--lowering", help="With --ckpt: the exported graph's lowering (standard).")
    ] = None,
    saliency_precision: Annotated[
        Precision | None,
        typer.Option(
            "--saliency-precision", help="With --ckpt --fp16, FRPT only: the saliency pass's precision (fp32)."
        ),
    ] = None,
    min_batch: Annotated[int, typer.Option("--min-batch", help="Smallest batch of the profile.")] = 1,
    opt_batch: Annotated[int, typer.Option("--opt-batch", help="Batch the builder tunes for.")] = 32,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Largest batch of the profile.")] = 64,
    workspace: Annotated[int | None, typer.Option("--workspace", min=1, help="Builder workspace limit, MiB.")] = None,
    timing_cache: Annotated[
        Path | None, typer.Option("--timing-cache", help="Timing cache file, reused across builds.")
    ] = None,
    plugin_lib: PluginLibOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
    version: VersionOpt = False,
) -> None:
    """Build a strongly typed TensorRT engine (+ sidecar <plan>.json) from an ONNX export or a checkpoint."""

    def body() -> int:
        from frpt_export.trt_build import BatchProfile
        from frpt_export.trt_job import TrtJob, run_trt_job

        profile = BatchProfile(min_batch, opt_batch, max_batch)
        job = TrtJob(
            onnx_path, ckpt, fp16, out, lowering, saliency_precision, profile, workspace, timing_cache, plugin_lib
        )
        return emit_report(run_trt_job(job, log=_log), as_json)

    run_command(debug, body)
