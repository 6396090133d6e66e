"""``frpt-train`` and ``frpt-eval``: parse options, call :func:`~frpt.jobs.run_train_job` /
:func:`~frpt.jobs.run_eval_job`, print the report.

Results go to stdout (``--json`` for machines), progress and logs to stderr. A user error prints one line on
stderr and exits 2 (traceback with ``--debug``); a missing torch names the extra to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from frpt.dataset_layouts import SPLITS
from frpt_runtime.cli_common import (
    BatchSizeOpt,
    DebugOpt,
    DeviceOpt,
    JsonOpt,
    VersionOpt,
    emit_report,
    make_app,
    out_option,
    run_command,
)
from frpt_runtime.contract import StrChoice
from frpt_runtime.families.frpt import BACKBONES, DECODERS, DPP_VARIANTS, MIN_INPUT_SIZE, POOLINGS

__all__ = ["eval_app", "train_app"]

Backbone = StrChoice("Backbone", {name: name for name in BACKBONES})
DppVariant = StrChoice("DppVariant", {name: name for name in DPP_VARIANTS})
Pooling = StrChoice("Pooling", {name: name for name in POOLINGS})
Decoder = StrChoice("Decoder", {name: name for name in DECODERS})
Split = StrChoice("Split", {name: name for name in SPLITS})

train_app = make_app(
    "frpt-train",
    help="Train FRPT (DPP + CAH + head + classifier) on a frozen pretrained backbone; writes a checkpoint.",
)
eval_app = make_app(
    "frpt-eval",
    help="Recall@1/2/4/8 (leave-one-out, cosine) of a checkpoint on a dataset's held-out classes.",
)
TRAIN_EXAMPLE = "Example: frpt-train --synthetic data/birds --input-size 128 --epochs 10 -o frpt.pt --eval"
EVAL_EXAMPLE = (
    "Examples: frpt-eval --ckpt frpt.pt --data data/birds --show-warps 6 -o warps.png ;  frpt-eval --embeddings embed/"
)


@train_app.command(no_args_is_help=True, epilog=TRAIN_EXAMPLE)
def train_command(
    data: Annotated[
        Path | None, typer.Option("--data", help="Dataset root (ImageFolder, train/test folders, CUB, Cars, Aircraft).")
    ] = None,
    synthetic: Annotated[
        Path | None, typer.Option("--synthetic", help="Generate the synthetic birds set here and train on it.")
    ] = None,
    synthetic_per_class: Annotated[
        int, typer.Option("--synthetic-per-class", min=2, help="Synthetic training images per class (test: half).")
    ] = 8,
    out: Annotated[Path, out_option("Checkpoint to write.")] = Path("frpt.pt"),
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 10,
    batch_size: BatchSizeOpt = 32,
    lr: Annotated[float, typer.Option("--lr", help="AdamW learning rate.")] = 3e-3,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    input_size: Annotated[
        int, typer.Option("--input-size", min=MIN_INPUT_SIZE, help="Model input side in pixels.")
    ] = 224,
    backbone: Annotated[
        Backbone, typer.Option("--backbone", help="efficientnet_lite0 (packaged weights) or resnet50 (from a file).")
    ] = Backbone.efficientnet_lite0,
    backbone_weights: Annotated[
        Path | None, typer.Option("--backbone-weights", help="Backbone weights file (torchvision format for resnet50).")
    ] = None,
    random_init: Annotated[
        bool, typer.Option("--random-init", help="Random backbone weights (smoke runs; no pretrained features).")
    ] = False,
    dpp_variant: Annotated[
        DppVariant,
        typer.Option("--dpp-variant", help="released (stride-16 tap, 1x1 conv) or paper (stride-4 tap, 31x31 conv)."),
    ] = DppVariant.released,
    pooling: Annotated[Pooling, typer.Option("--pooling", help="avg (paper) or gem (released code, with BN neck).")] = (
        Pooling.avg
    ),
    cah_reduction: Annotated[int, typer.Option("--cah-reduction", min=1, help="CAH SE reduction ratio r.")] = 8,
    embedding_dim: Annotated[
        int,
        typer.Option("--embedding-dim", min=0, help="Trainable projection after pooling (0: the paper's plain head)."),
    ] = 256,
    label_smoothing: Annotated[float, typer.Option("--label-smoothing", min=0.0, max=1.0)] = 0.0,
    decoder: Annotated[
        Decoder,
        typer.Option("--decoder", help="fast (JPEG draft, crop box resized alone) or exact (torchvision's pixels)."),
    ] = Decoder.fast,
    evaluate: Annotated[
        bool, typer.Option("--eval", help="Report Recall@K on the held-out test split afterwards.")
    ] = False,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
    version: VersionOpt = False,
) -> None:
    """Train FRPT and save a self-contained checkpoint."""

    def body() -> int:
        from frpt.jobs import TrainJob, run_train_job

        job = TrainJob(
            data, synthetic, synthetic_per_class, out, epochs, batch_size, lr, seed, input_size, backbone.value,
            backbone_weights, random_init, dpp_variant.value, pooling.value, cah_reduction, embedding_dim,
            label_smoothing, evaluate, device, decoder.value,
        )  # fmt: skip
        return emit_report(run_train_job(job, log=lambda line: typer.echo(line, err=True)), as_json, "frpt-train")

    run_command(debug, body)


@eval_app.command(no_args_is_help=True, epilog=EVAL_EXAMPLE)
def eval_command(
    ckpt: Annotated[Path | None, typer.Option("--ckpt", help="Checkpoint written by frpt-train.")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Dataset root (with --ckpt).")] = None,
    embeddings: Annotated[
        Path | None, typer.Option("--embeddings", help="frpt-embed output folder to score instead (no model run).")
    ] = None,
    split: Annotated[Split, typer.Option("--split", help="test (held-out classes) or train.")] = Split.test,
    batch_size: BatchSizeOpt = 64,
    show_warps: Annotated[
        int, typer.Option("--show-warps", min=0, help="Also draw N original / saliency / DPP-perturbed rows.")
    ] = 0,
    out: Annotated[Path, out_option("PNG that --show-warps writes.")] = Path("warps.png"),
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
    version: VersionOpt = False,
) -> None:
    """Print Recall@K of a checkpoint on a dataset split, or of frpt-embed's written embeddings."""

    def body() -> int:
        from frpt.jobs import EvalJob, run_eval_job

        return emit_report(
            run_eval_job(EvalJob(ckpt, data, embeddings, split.value, batch_size, show_warps, out, device)),
            as_json,
            "frpt-eval",
        )

    run_command(debug, body)
