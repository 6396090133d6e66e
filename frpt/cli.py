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
from frpt.vpt.recipes import OPTIMIZERS, POSITIVE_MEANS, RECIPES
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
from frpt_runtime.contract import Family, StrChoice
from frpt_runtime.families.frpt import BACKBONES, DECODERS, DPP_VARIANTS, POOLINGS
from frpt_runtime.families.vpt import VIT_BACKBONES

__all__ = ["eval_app", "train_app"]

Backbone = StrChoice("Backbone", {name: name for name in (*BACKBONES, *VIT_BACKBONES)})
Recipe = StrChoice("Recipe", {name: name for name in RECIPES})
Optimizer = StrChoice("Optimizer", {name: name for name in OPTIMIZERS})
PositiveMean = StrChoice("PositiveMean", {name: name for name in POSITIVE_MEANS})
DppVariant = StrChoice("DppVariant", {name: name for name in DPP_VARIANTS})
Pooling = StrChoice("Pooling", {name: name for name in POOLINGS})
Decoder = StrChoice("Decoder", {name: name for name in DECODERS})
Split = StrChoice("Split", {name: name for name in SPLITS})

train_app = make_app(
    "frpt-train",
    help="Train FRPT (DPP + CAH + head + classifier) on a frozen pretrained backbone, or --family vpt (ViT + BitFit + "
    "deep prompts + semantic proxies); writes a checkpoint.",
)
eval_app = make_app(
    "frpt-eval",
    help="Recall@1/2/4/8 (leave-one-out, cosine) of a checkpoint on a dataset's held-out classes.",
)
TRAIN_EXAMPLE = (
    "Examples: frpt-train --synthetic data/birds --input-size 128 --epochs 10 -o frpt.pt --eval ;  "
    "frpt-train --family vpt --recipe cub --data /datasets/CUB_200_2011 --input-size 224 -o vpt.pt"
)
FRPT_ONLY, VPT_ONLY = "FRPT only", "--family vpt only"
EVAL_EXAMPLE = (
    "Examples: frpt-eval --ckpt frpt.pt --data data/birds --show-warps 6 -o warps.png ;  frpt-eval --embeddings embed/"
)


def _value(choice: StrChoice | None) -> str | None:
    return None if choice is None else choice.value


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
    family: Annotated[
        Family, typer.Option("--family", help="Model family: frpt (FRPT) or vpt (VPT semantic proxies).")
    ] = (Family.frpt),
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Epochs (FRPT 10; vpt: the recipe's).")] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "-b", min=1, help="Images per batch (FRPT 32; vpt: the recipe's 64).")
    ] = None,
    lr: Annotated[
        float | None, typer.Option("--lr", help="Learning rate (FRPT: AdamW 3e-3; vpt: the recipe's).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    input_size: Annotated[
        int,
        typer.Option(
            "--input-size", min=1, help="Model input side in pixels (FRPT >= 64; vpt: a multiple of the patch)."
        ),
    ] = 224,
    backbone: Annotated[
        Backbone | None,
        typer.Option(
            "--backbone",
            help="FRPT: efficientnet_lite0 (packaged weights, default) or resnet50 (from a file); vpt: "
            "vit_small_patch14_dinov2 (packaged DINOv2, default) or vit_small_patch16_224 (from a file).",
        ),
    ] = None,
    backbone_weights: Annotated[
        Path | None,
        typer.Option("--backbone-weights", help="Backbone weights file (torchvision resnet50, timm ViT state dict)."),
    ] = None,
    random_init: Annotated[
        bool, typer.Option("--random-init", help="Random backbone weights (smoke runs; no pretrained features).")
    ] = False,
    dpp_variant: Annotated[
        DppVariant | None,
        typer.Option("--dpp-variant", help=f"{FRPT_ONLY}: released (stride-16 tap, 1x1 conv, default) or paper."),
    ] = None,
    pooling: Annotated[
        Pooling | None, typer.Option("--pooling", help=f"{FRPT_ONLY}: avg (paper, default) or gem (released code).")
    ] = None,
    cah_reduction: Annotated[
        int | None, typer.Option("--cah-reduction", min=1, help=f"{FRPT_ONLY}: CAH SE reduction ratio r (8).")
    ] = None,
    embedding_dim: Annotated[
        int | None,
        typer.Option(
            "--embedding-dim",
            min=0,
            help="FRPT: projection after pooling (256; 0: the paper's plain head); "
            "vpt: the head's width (the recipe's 384).",
        ),
    ] = None,
    label_smoothing: Annotated[
        float | None, typer.Option("--label-smoothing", min=0.0, max=1.0, help=f"{FRPT_ONLY} (0).")
    ] = None,
    recipe: Annotated[
        Recipe | None, typer.Option("--recipe", help=f"{VPT_ONLY}: the paper's ViT-S settings, cub (default) or cars.")
    ] = None,
    optimizer: Annotated[Optimizer | None, typer.Option("--optimizer", help=f"{VPT_ONLY}: sgd or adamw.")] = None,
    lr_proxy: Annotated[float | None, typer.Option("--lr-proxy", help=f"{VPT_ONLY}: the proxies' rate.")] = None,
    samples_per_class: Annotated[
        int | None, typer.Option("--samples-per-class", min=1, help=f"{VPT_ONLY}: k per class in a batch (2).")
    ] = None,
    num_prompt: Annotated[int | None, typer.Option("--num-prompt", min=0, help=f"{VPT_ONLY}: prompt tokens.")] = None,
    prompt_depth: Annotated[
        int | None, typer.Option("--prompt-depth", min=0, help=f"{VPT_ONLY}: blocks with prompts.")
    ] = None,
    bitfit: Annotated[
        bool | None, typer.Option("--bitfit/--no-bitfit", help=f"{VPT_ONLY}: train every ViT bias (on).")
    ] = None,
    semantic_proxies: Annotated[
        bool | None,
        typer.Option("--semantic-proxies/--no-semantic-proxies", help=f"{VPT_ONLY}: the semantic-proxy pass (on)."),
    ] = None,
    positive_mean: Annotated[
        PositiveMean | None,
        typer.Option("--positive-mean", help=f"{VPT_ONLY}: Proxy-Anchor positive term over P+ (default) or all."),
    ] = None,
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
    """Train a model of either family and save a self-contained checkpoint."""

    def body() -> int:
        from frpt.jobs import TrainJob, run_train_job

        value = _value
        job = TrainJob(
            data, synthetic, synthetic_per_class, out, epochs, batch_size, lr, seed, input_size, value(backbone),
            backbone_weights, random_init, value(dpp_variant), value(pooling), cah_reduction, embedding_dim,
            label_smoothing, evaluate, device, family.value, value(recipe), value(optimizer), lr_proxy,
            samples_per_class, num_prompt, prompt_depth, bitfit, semantic_proxies, value(positive_mean), decoder.value,
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
