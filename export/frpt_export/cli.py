"""``frpt-export``: ``onnx`` (checkpoint -> ONNX + reference bundle), ``parity`` (live PyTorch vs ONNX
Runtime), ``trt`` (ONNX or checkpoint -> TensorRT plan + sidecar).

Only parses options and calls :func:`~frpt_export.onnx_export.export_onnx`,
:func:`~frpt_export.reference.live_parity` and :func:`~frpt_export.trt_build.build_engine`; heavy modules
(torch, onnx, onnxruntime, tensorrt) are imported inside the commands so ``--help`` is instant and a
missing optional dependency disables one command with a message naming the extra to install. Results go
to stdout (``--json`` for machines), progress to stderr. A :class:`FrptError` prints one line on stderr
and exits 2 (traceback with ``--debug``); a failed parity check exits 1.
"""

from __future__ import annotations

import importlib
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from frpt.cli_common import EXIT_PARITY_FAILED, DebugOpt, JsonOpt, make_app, run_command
from frpt.errors import FrptError

__all__ = ["app"]


class Lowering(str, Enum):
    standard = "standard"
    plugin = "plugin"


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"


CkptOpt = Annotated[Optional[Path], typer.Option("--ckpt", help="FRPT checkpoint (frpt-train output).")]
LoweringOpt = Annotated[
    Lowering, typer.Option("--lowering", help="standard: DPP as plain ONNX ops; plugin: one frpt::InhomogeneousSample node.")
]
SaliencyOpt = Annotated[
    Precision,
    typer.Option("--saliency-precision", help="fp16 graphs: the saliency pass (backbone to the tap + parser) in fp32 "
                 "(default: the DPP warp amplifies fp16 error) or fp16 (faster; check parity)."),
]

app = make_app(
    "frpt-export",
    help="Export FRPT checkpoints to ONNX and TensorRT engines, with parity against PyTorch.",
    epilog="Example: frpt-export onnx --ckpt model.ckpt -o model.onnx --precision fp16 && "
    "frpt-export trt --onnx model.onnx --max-batch 64",
)


def _load(module: str, extra: str):
    """Import ``module`` or fail with the pip extra that provides what is missing."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise FrptError(f"this command needs the Python package {exc.name!r}: pip install 'frpt-toolkit[{extra}]'") from None


def _log(message: str) -> None:
    typer.echo(message, err=True)


def _export(ckpt: Path, out: Path, lowering: str, precision: str, saliency: str, opset: int, ref_images: Path | None):
    export = _load("frpt_export.onnx_export", "export")
    _log(f"exporting {ckpt} -> {out} ({lowering} lowering, {precision}, opset {opset}) ...")
    return export.export_onnx(ckpt, out, lowering, precision, opset, ref_images, saliency)


def _export_summary(report) -> str:
    from frpt_runtime.parity import ParityReport

    return "\n".join(
        [
            f"onnx       {report.onnx_path}: {report.num_nodes} nodes, {report.size_bytes / 2**20:.1f} MiB, "
            f"{report.precision} (saliency {report.saliency_precision}), {report.lowering} lowering, opset {report.opset}, "
            f"input {report.input_size}px, D={report.embedding_dim} ({report.seconds:.1f} s)",
            f"bundle     {report.bundle_path}",
            f"polygraphy {report.inputs_json}, {report.outputs_json}",
            "ONNX Runtime CPU vs PyTorch fp32 on the bundle:",
            ParityReport.from_dict(report.parity).format(),
        ]
    )


@app.command(no_args_is_help=True)
def onnx(
    ckpt: CkptOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write.")] = Path("model.onnx"),
    lowering: LoweringOpt = Lowering.standard,
    precision: Annotated[
        Precision, typer.Option("--precision", help="fp16: backbone in half, saliency/grid/CAH/pooling/L2 in float32.")
    ] = Precision.fp32,
    saliency_precision: SaliencyOpt = Precision.fp32,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (GridSample needs >= 16; 20+ misparses in TensorRT).")] = 17,
    ref_images: Annotated[
        Optional[Path], typer.Option("--ref-images", help="Folder of reference images for the bundle (default: bundled photos).")
    ] = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Export a checkpoint to ONNX (uint8 NHWC images -> L2-normalised embedding) with its reference bundle."""

    def body() -> int:
        if ckpt is None:
            raise FrptError("--ckpt is required: the checkpoint to export")
        report = _export(ckpt, out, lowering.value, precision.value, saliency_precision.value, opset, ref_images)
        typer.echo(report.to_json() if json_out else _export_summary(report))
        return 0 if report else EXIT_PARITY_FAILED

    run_command(debug, body)


@app.command(no_args_is_help=True)
def parity(
    ckpt: CkptOpt = None,
    onnx_path: Annotated[Optional[Path], typer.Option("--onnx", help="Exported ONNX file to check.")] = None,
    images: Annotated[
        Optional[Path],
        typer.Option("--images", help="Image folder (default: the bundle's images beside the ONNX file)."),
    ] = None,
    max_images: Annotated[int, typer.Option("--max-images", min=1, help="Use at most this many images of --images.")] = 64,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Live parity: PyTorch (from the checkpoint, now) vs ONNX Runtime CPU on the same images."""

    def body() -> int:
        if ckpt is None or onnx_path is None:
            raise FrptError("both --ckpt and --onnx are required")
        meta = _load("frpt_export.onnx_meta", "export").read_metadata(onnx_path)
        reference = _load("frpt_export.reference", "export")
        model = _load("frpt.checkpoint", "torch").load_checkpoint(ckpt)
        cfg = model.config
        if images is not None:
            pixels = reference.reference_images(cfg.input_size, cfg.crop_pct, images, max_images)
        else:
            from frpt_runtime.bundle import bundle_path_for, load_bundle

            pixels = load_bundle(bundle_path_for(onnx_path)).images
        _log(f"comparing PyTorch and ONNX Runtime on {len(pixels)} images ({meta['frpt.precision']}) ...")
        report = reference.live_parity(model, onnx_path, pixels, meta["frpt.precision"])
        typer.echo(report.to_json() if json_out else report.format())
        if not report:
            _log(f"parity FAILED: {report.failure()}")
        return 0 if report else EXIT_PARITY_FAILED

    run_command(debug, body)


@app.command(no_args_is_help=True)
def trt(
    onnx_path: Annotated[Optional[Path], typer.Option("--onnx", help="Exported ONNX graph to build.")] = None,
    ckpt: CkptOpt = None,
    fp16: Annotated[
        bool, typer.Option("--fp16", help="Build from the fp16 graph (exported on the fly from --ckpt if needed).")
    ] = False,
    plan: Annotated[Optional[Path], typer.Option("--plan", help="Engine to write (default: beside the ONNX, .plan).")] = None,
    lowering: LoweringOpt = Lowering.standard,
    saliency_precision: SaliencyOpt = Precision.fp32,
    min_batch: Annotated[int, typer.Option("--min-batch", help="Smallest batch of the profile.")] = 1,
    opt_batch: Annotated[int, typer.Option("--opt-batch", help="Batch the builder tunes for.")] = 32,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Largest batch of the profile.")] = 64,
    workspace: Annotated[Optional[int], typer.Option("--workspace", help="Builder workspace limit, MiB.")] = None,
    timing_cache: Annotated[Optional[Path], typer.Option("--timing-cache", help="Timing cache file, reused across builds.")] = None,
    plugin_lib: Annotated[Optional[Path], typer.Option("--plugin-lib", help="libfrpt_plugins.so (plugin lowering).")] = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Build a strongly typed TensorRT engine (+ sidecar <plan>.json) from an ONNX export or a checkpoint."""

    def body() -> int:
        if onnx_path is None and ckpt is None:
            raise FrptError("give --onnx GRAPH or --ckpt CHECKPOINT")
        graph_precision = None
        if onnx_path is not None:
            graph_precision = _load("frpt_export.onnx_meta", "export").read_metadata(onnx_path)["frpt.precision"]
        # --fp16 asks for the fp16 graph; without it a given graph is built in its own precision
        precision = "fp16" if fp16 else (graph_precision or "fp32")
        if onnx_path is not None and graph_precision != precision and ckpt is None:
            raise FrptError(
                f"{onnx_path} is the {graph_precision} graph: pass --ckpt to export the {precision} graph "
                f"on the fly, or run `frpt-export onnx --precision {precision}`"
            )

        def refuse_overwriting_inputs(target: Path) -> None:
            for given in (onnx_path, ckpt):
                if given is not None and target.resolve() == given.resolve():
                    raise FrptError(f"--plan {target} would overwrite the input {given}: choose another --plan")

        if graph_precision == precision:
            source, target = onnx_path, plan or onnx_path.with_suffix(".plan")
            refuse_overwriting_inputs(target)
        else:  # export the graph beside the plan, so the plan's bundle is <plan stem>.ref.npz
            default = ckpt.with_suffix(".plan") if onnx_path is None else onnx_path.with_suffix(f".{precision}.plan")
            target = plan or default
            refuse_overwriting_inputs(target)
            source = target.with_suffix(".onnx")
            if onnx_path is not None and source.resolve() == onnx_path.resolve():
                raise FrptError(f"exporting the {precision} graph would overwrite {onnx_path}: choose another --plan")
            report = _export(ckpt, source, lowering.value, precision, saliency_precision.value, 17, None)
            _log(_export_summary(report))
            if not report:
                raise FrptError(f"the exported {precision} graph fails parity in ONNX Runtime; not building an engine")
        builder = _load("frpt_export.trt_build", "export")
        _log(f"building {target} from {source} (batch {min_batch}/{opt_batch}/{max_batch}) ...")
        result = builder.build_engine(
            source, target, min_batch, opt_batch, max_batch, workspace, timing_cache,
            None if plugin_lib is None else str(plugin_lib),
        )
        typer.echo(
            result.to_json()
            if json_out
            else f"engine  {result.plan_path}: {result.plan_bytes / 2**20:.1f} MiB, {result.precision}, "
            f"{result.lowering} lowering, {result.trt_flavour} {result.trt_version}, batch "
            f"{result.min_batch}/{result.opt_batch}/{result.max_batch} ({result.seconds:.1f} s)\n"
            f"sidecar {result.sidecar_path}"
        )
        return 0

    run_command(debug, body)
