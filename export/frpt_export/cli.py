"""``frpt-export``: ``onnx`` (checkpoint -> ONNX + reference bundle), ``parity`` (live PyTorch vs ONNX Runtime),
``trt`` (ONNX or checkpoint -> TensorRT plan + sidecar), ``triton`` (export or plan -> Triton model repository),
``build-plugin`` (the TensorRT plugin library, built with CMake from the installed package).

Each command parses its options and calls one library function (:func:`~frpt_export.onnx_export.export_onnx`,
:func:`~frpt_export.reference.live_parity`, :func:`~frpt_export.trt_job.run_trt_job`,
:func:`~frpt_export.triton_repo.write_triton_repository`, :func:`~frpt_export.plugin_build.build_plugin`); heavy
modules (torch, onnx, onnxruntime, tensorrt) are imported inside the commands so ``--help`` is instant and a
missing optional dependency disables one command with a message naming the extra to install. Results go to stdout
(``--json``: ``{"command": ..., "result": ...}``, :func:`~frpt_runtime.cli_common.emit_report`), progress to
stderr. A user error prints one line on stderr and exits 2 (traceback with ``--debug``); a failed parity check
exits 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from frpt_export.triton_repo import OrtAccelerator
from frpt_runtime.cli_common import (
    BundleOpt,
    DebugOpt,
    DeviceOpt,
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
    typer.Option("--lowering", help="standard: DPP as plain ONNX ops; plugin: one frpt::InhomogeneousSample node."),
]
SaliencyOpt = Annotated[
    Precision,
    typer.Option(
        "--saliency-precision",
        help="fp16 FRPT graphs: the saliency pass (backbone to the tap + parser) in fp32 (default: the DPP warp "
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
    saliency_precision: SaliencyOpt = Precision.fp32,
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
        report = export_onnx(ckpt, out, LowerOptions(lowering, precision, saliency_precision), opset, ref_images)
        return emit_report(report, as_json, "frpt-export onnx")

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
        return emit_report(live_parity(ckpt, onnx_path, images, max_images), as_json, "frpt-export parity")

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
        typer.Option("--saliency-precision", help="With --ckpt --fp16: the saliency pass's precision (fp32)."),
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
        return emit_report(run_trt_job(job, log=_log), as_json, "frpt-export trt")

    run_command(debug, body)


@app.command(
    no_args_is_help=True,
    epilog="Example: frpt-export triton model.fp16.plan -o model_repository/ --preferred-batch 16 --preferred-batch 32",
)
def triton(
    model: Annotated[
        Path, typer.Argument(help="model.onnx (onnxruntime_onnx) or model.plan + sidecar (tensorrt_plan).")
    ],
    out: Annotated[Path, out_option("Model repository folder (MODEL's folder NAME/ is added to it).")] = Path(
        "model_repository"
    ),
    name: Annotated[str | None, typer.Option("--name", help="Model name (default: MODEL's stem, '.' -> '_').")] = None,
    max_batch: Annotated[
        int | None,
        typer.Option("--max-batch", min=1, help="max_batch_size (ONNX default 64; a plan: its profile's, at most)."),
    ] = None,
    preferred_batch: Annotated[
        list[int] | None,
        typer.Option(
            "--preferred-batch", min=1, help="Dynamic batching's preferred size (repeat; default: plan opt+max)."
        ),
    ] = None,
    max_queue_delay: Annotated[
        int, typer.Option("--max-queue-delay-us", min=0, help="Dynamic batcher's wait for a preferred batch, µs.")
    ] = 100,
    instances: Annotated[int, typer.Option("--instances", min=1, help="Model instances per device.")] = 1,
    device: DeviceOpt = "auto",
    ort_accelerator: Annotated[
        OrtAccelerator,
        typer.Option("--ort-accelerator", help="ONNX on a GPU: ONNX Runtime's CUDA provider (none) or TensorRT's."),
    ] = OrtAccelerator.none,
    bundle: BundleOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write a Triton Inference Server model repository (config.pbtxt, 1/model.*, README.md) for MODEL."""

    def body() -> int:
        from frpt_export.triton_repo import TritonJob, write_triton_repository

        job = TritonJob(
            model, out, name, max_batch, tuple(preferred_batch or ()), max_queue_delay, instances, device,
            ort_accelerator, bundle,
        )  # fmt: skip
        return emit_report(write_triton_repository(job), as_json, "frpt-export triton")

    run_command(debug, body)


@app.command(
    "build-plugin", epilog="Example: frpt-export build-plugin --tensorrt-root /opt/TensorRT-10.3.0.26 --cuda-arch 87"
)
def build_plugin_command(
    tensorrt_root: Annotated[
        Path | None,
        typer.Option("--tensorrt-root", help="TensorRT prefix holding include/ (default: $TensorRT_ROOT, system)."),
    ] = None,
    out: Annotated[
        Path | None,
        out_option("Build folder for libfrpt_plugins.so (default: where the runtime looks, see plugins/README.md)."),
    ] = None,
    cuda_arch: Annotated[
        str | None,
        typer.Option("--cuda-arch", help="CMAKE_CUDA_ARCHITECTURES, e.g. 87 (Orin) or '80;90' (default: plugin's)."),
    ] = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Build the TensorRT plugin library (libfrpt_plugins.so) with CMake from the installed package."""

    def body() -> int:
        from frpt_export.plugin_build import PluginBuildJob, build_plugin

        _log("building libfrpt_plugins.so with CMake ...")
        return emit_report(
            build_plugin(PluginBuildJob(out, tensorrt_root, cuda_arch)), as_json, "frpt-export build-plugin"
        )

    run_command(debug, body)
