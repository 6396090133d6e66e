"""``frpt-train`` and ``frpt-eval``: thin typer front-ends over :mod:`frpt.train` and :mod:`frpt.visualize`.

Results go to stdout (``--json`` for machines), progress and logs to stderr. A :class:`FrptError` prints
one line on stderr and exits 2 (traceback with ``--debug``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from frpt.cli_common import DebugOpt, JsonOpt, make_app, run_command
from frpt.errors import FrptError
from frpt.output_paths import check_output_file

__all__ = ["train_app", "eval_app"]

DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N or auto (CUDA when available).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Images per step.")]

train_app = make_app(
    "frpt-train",
    help="Train FRPT (DPP + CAH + head + classifier) on a frozen pretrained backbone; writes a checkpoint.",
)
eval_app = make_app(
    "frpt-eval",
    help="Recall@1/2/4/8 (leave-one-out, cosine) of a checkpoint on a dataset's held-out classes.",
)


def _print_recall(recall: dict, as_json: bool) -> None:
    from frpt.metrics import format_recall

    if as_json:
        typer.echo(json.dumps(recall, indent=2))
    else:
        scores = {k: v for k, v in recall.items() if k.startswith("recall@")}
        typer.echo(f"{format_recall(scores)}   ({recall['images']} images, {recall['classes']} classes)")


TRAIN_EXAMPLE = "Example: frpt-train --synthetic data/birds --input-size 128 --epochs 10 --out frpt.pt --eval"
EVAL_EXAMPLE = (
    "Examples: frpt-eval --ckpt frpt.pt --data data/birds --show-warps 6 --warps-png warps.png ;  "
    "frpt-eval --embeddings embed/"
)


@train_app.command(no_args_is_help=True, epilog=TRAIN_EXAMPLE)
def train_command(
    data: Annotated[
        Optional[Path],
        typer.Option("--data", help="Dataset root (ImageFolder, train/test folders, CUB, Cars, Aircraft)."),
    ] = None,
    synthetic: Annotated[
        Optional[Path], typer.Option("--synthetic", help="Generate the synthetic birds set here and train on it.")
    ] = None,
    synthetic_per_class: Annotated[
        int, typer.Option("--synthetic-per-class", min=2, help="Synthetic training images per class (test: half).")
    ] = 8,
    out: Annotated[Path, typer.Option("--out", help="Checkpoint to write.")] = Path("frpt.pt"),
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 10,
    batch_size: BatchOpt = 32,
    lr: Annotated[float, typer.Option("--lr", help="AdamW learning rate.")] = 3e-3,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    input_size: Annotated[int, typer.Option("--input-size", min=32, help="Model input side in pixels.")] = 224,
    backbone: Annotated[
        str, typer.Option("--backbone", help="efficientnet_lite0 (packaged weights) or resnet50.")
    ] = "efficientnet_lite0",
    backbone_weights: Annotated[
        Optional[str],
        typer.Option("--backbone-weights", help="Backbone weights file (torchvision format for resnet50)."),
    ] = None,
    random_init: Annotated[bool, typer.Option("--random-init", help="Random backbone weights (tests only).")] = False,
    dpp_variant: Annotated[
        str,
        typer.Option("--dpp-variant", help="released (stride-16 tap, 1x1 conv) or paper (stride-4 tap, 31x31 conv)."),
    ] = "released",
    pooling: Annotated[
        str, typer.Option("--pooling", help="avg (paper) or gem (released code, with BN neck).")
    ] = "avg",
    cah_reduction: Annotated[int, typer.Option("--cah-reduction", min=1, help="CAH SE reduction ratio r.")] = 8,
    embedding_dim: Annotated[
        int,
        typer.Option(
            "--embedding-dim", min=0, help="Trainable projection after pooling (0: the paper's plain pooled features)."
        ),
    ] = 256,
    label_smoothing: Annotated[float, typer.Option("--label-smoothing", min=0.0, max=1.0)] = 0.0,
    evaluate: Annotated[
        bool, typer.Option("--eval", help="Report Recall@K on the held-out test split afterwards.")
    ] = False,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train FRPT and save a self-contained checkpoint."""

    def body() -> None:
        from frpt.backbones import backbone_pixel_stats
        from frpt.checkpoint import save_checkpoint
        from frpt.config import FRPTConfig
        from frpt.synthetic import SyntheticSpec, generate_synthetic
        from frpt.train import TrainSettings, evaluate_recall, train

        if (data is None) == (synthetic is None):
            raise FrptError("give exactly one of --data DIR or --synthetic DIR")
        if not lr > 0:
            raise FrptError(f"--lr must be > 0, got {lr}")
        check_output_file(out, "--out")  # before training, so a long run is never lost at the save
        root = data
        if synthetic is not None:
            typer.echo(f"generating the synthetic set in {synthetic}", err=True)
            generate_synthetic(
                synthetic,
                SyntheticSpec(
                    train_per_class=synthetic_per_class, test_per_class=max(2, synthetic_per_class // 2), seed=seed
                ),
            )
            root = synthetic
        mean, std = backbone_pixel_stats(backbone)
        try:
            config = FRPTConfig(
                backbone=backbone,
                input_size=input_size,
                pixel_mean=mean,
                pixel_std=std,
                dpp_variant=dpp_variant,
                pooling=pooling,
                cah_reduction=cah_reduction,
                embedding_dim=embedding_dim,
                label_smoothing=label_smoothing,
            )
        except ValueError as exc:
            raise FrptError(str(exc)) from None
        settings = TrainSettings(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device)
        model, history = train(config, root, settings, backbone_weights=backbone_weights, random_init=random_init)
        save_checkpoint(model, out)
        summary = {
            "checkpoint": str(out),
            "parameters": model.parameter_report(),
            "history": [h.to_dict() for h in history],
        }
        if evaluate:
            summary["test"] = evaluate_recall(model, root, batch_size=batch_size)
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
            return
        p = summary["parameters"]
        typer.echo(
            f"checkpoint {out}: {p['trainable']:,} trainable of {p['total']:,} parameters; "
            f"final loss {history[-1].loss:.4f}, train accuracy {history[-1].accuracy:.3f}"
        )
        if evaluate:
            _print_recall(summary["test"], False)

    run_command(debug, body)


@eval_app.command(no_args_is_help=True, epilog=EVAL_EXAMPLE)
def eval_command(
    ckpt: Annotated[Optional[Path], typer.Option("--ckpt", help="Checkpoint written by frpt-train.")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="Dataset root (with --ckpt).")] = None,
    embeddings: Annotated[
        Optional[Path], typer.Option("--embeddings", help="frpt-embed output folder to score instead (no model run).")
    ] = None,
    split: Annotated[str, typer.Option("--split", help="test (held-out classes) or train.")] = "test",
    batch_size: BatchOpt = 64,
    show_warps: Annotated[
        int, typer.Option("--show-warps", min=0, help="Also draw N original / saliency / DPP-perturbed rows.")
    ] = 0,
    warps_png: Annotated[Path, typer.Option("--warps-png", help="Where --show-warps writes its PNG.")] = Path(
        "warps.png"
    ),
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Print Recall@K of a checkpoint on a dataset split, or of frpt-embed's written embeddings."""

    def body() -> None:
        if embeddings is not None:
            if ckpt is not None or data is not None:
                raise FrptError("give either --embeddings DIR or --ckpt with --data, not both")
            from frpt.metrics import recall_from_embeddings

            _print_recall(recall_from_embeddings(embeddings), as_json)
            return
        if ckpt is None or data is None:
            raise FrptError("give --ckpt CKPT --data DIR (or --embeddings DIR from frpt-embed)")
        if show_warps:
            check_output_file(warps_png, "--warps-png")
        import torch

        from frpt.checkpoint import load_checkpoint
        from frpt.datasets import ImageListDataset, load_split
        from frpt.train import evaluate_recall, resolve_device
        from frpt.visualize import save_warp_grid

        model = load_checkpoint(ckpt, map_location=resolve_device(device))
        recall = evaluate_recall(model, data, split=split, batch_size=batch_size)
        if show_warps:
            dataset = ImageListDataset(load_split(data, split), model.config.input_size, model.config.crop_pct)
            picks = torch.linspace(0, len(dataset) - 1, min(show_warps, len(dataset))).round().long().tolist()
            save_warp_grid(model, torch.stack([dataset[i][0] for i in picks]), warps_png)
            recall["warps_png"] = str(warps_png)
            typer.echo(f"wrote {warps_png}", err=True)
        _print_recall(recall, as_json)

    run_command(debug, body)
