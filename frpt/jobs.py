"""``frpt-train`` and ``frpt-eval`` as library calls: every decision the commands make lives here.

:func:`run_train_job` checks every input before any work (one data source, a positive learning rate, a writable
checkpoint path, the options of the job's model family, the model config, a given backbone weights file), generates
the synthetic set when asked (held-out classes get half as many images, at least 2), trains the family's model,
saves and optionally evaluates. Options left ``None`` take the family's default (FRPT's below; VPT's from its
recipe, :mod:`frpt.vpt.train_job`); an option of the other family is refused, since it would be ignored.
:func:`run_eval_job` scores a checkpoint of any family on a dataset split (optionally drawing FRPT's DPP picture)
or scores the embeddings ``frpt-embed`` wrote (no torch needed for that path).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from frpt.vpt import train_job as vpt_job
from frpt_runtime.errors import FrptError
from frpt_runtime.families import ModelConfig, family_of
from frpt_runtime.families.frpt import BACKBONE_PIXEL_STATS, DPP_TAP_STRIDE, MIN_INPUT_SIZE, FRPTConfig
from frpt_runtime.families.vpt import VIT_BACKBONES, VPTConfig
from frpt_runtime.metrics import format_recall
from frpt_runtime.output_paths import check_output_file

__all__ = ["EvalJob", "EvalReport", "TrainJob", "TrainReport", "run_eval_job", "run_train_job"]


@dataclass(frozen=True)
class TrainJob:
    """What ``frpt-train`` was asked to do (model options follow the family's config class; ``None``: its default).

    ``family`` picks the model (:data:`frpt.families.FACTORIES`). FRPT-only: ``dpp_variant``, ``pooling``,
    ``cah_reduction``, ``label_smoothing``. VPT-only (:mod:`frpt.vpt.train_job`): ``recipe`` (the paper's settings
    per dataset, default ``cub``), ``optimizer``, ``lr_proxy``, ``samples_per_class``, ``num_prompt``,
    ``prompt_depth``, ``bitfit``, ``semantic_proxies``, ``positive_mean``. Both: ``decoder`` (``fast`` | ``exact``).
    """

    data: Path | None = None
    synthetic: Path | None = None
    synthetic_per_class: int = 8
    out: Path = Path("frpt.pt")
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    input_size: int = 224
    backbone: str | None = None
    backbone_weights: Path | None = None
    random_init: bool = False
    dpp_variant: str | None = None
    pooling: str | None = None
    cah_reduction: int | None = None
    embedding_dim: int | None = None
    label_smoothing: float | None = None
    evaluate: bool = False
    device: str = "auto"
    family: str = FRPTConfig.family
    recipe: str | None = None
    optimizer: str | None = None
    lr_proxy: float | None = None
    samples_per_class: int | None = None
    num_prompt: int | None = None
    prompt_depth: int | None = None
    bitfit: bool | None = None
    semantic_proxies: bool | None = None
    positive_mean: str | None = None
    decoder: str = "fast"


@dataclass(frozen=True)
class TrainReport:
    """The checkpoint written, its parameter counts, the per-epoch history and (``--eval``) Recall@K."""

    checkpoint: str
    parameters: dict[str, int]
    history: list[dict[str, float]]
    test: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "parameters": self.parameters,
            "history": self.history,
            "test": self.test,
        }

    def format(self) -> str:
        p, last = self.parameters, self.history[-1]
        accuracy = f", train accuracy {last['accuracy']:.3f}" if "accuracy" in last else ""
        lines = [
            f"checkpoint {self.checkpoint}: {p['trainable']:,} trainable of {p['total']:,} parameters; "
            f"final loss {last['loss']:.4f}{accuracy}"
        ]
        if self.test is not None:
            lines.append(EvalReport(self.test).format())
        return "\n".join(lines)


# ---- the FRPT family's part of a training job -------------------------------------------------------------------
_FRPT_DEFAULTS = {
    "epochs": 10,
    "batch_size": 32,
    "lr": 3e-3,
    "backbone": "efficientnet_lite0",
    "embedding_dim": 256,
    "dpp_variant": "released",
    "pooling": "avg",
    "cah_reduction": 8,
    "label_smoothing": 0.0,
}


def _frpt_config(job: TrainJob) -> FRPTConfig:
    if job.input_size < MIN_INPUT_SIZE:
        raise FrptError(f"--input-size must be >= {MIN_INPUT_SIZE}, got {job.input_size}")
    if job.backbone not in BACKBONE_PIXEL_STATS:
        hint = ": it is a vpt backbone, add --family vpt" if job.backbone in VIT_BACKBONES else ""
        raise FrptError(f"--backbone must be one of {', '.join(BACKBONE_PIXEL_STATS)}, got {job.backbone!r}{hint}")
    mean, std = BACKBONE_PIXEL_STATS[job.backbone]
    try:
        return FRPTConfig(
            backbone=job.backbone,
            input_size=job.input_size,
            decoder=job.decoder,
            pixel_mean=mean,
            pixel_std=std,
            dpp_variant=job.dpp_variant,
            pooling=job.pooling,
            cah_reduction=job.cah_reduction,
            embedding_dim=job.embedding_dim,
            label_smoothing=job.label_smoothing,
        )
    except ValueError as exc:
        raise FrptError(str(exc)) from None


def _frpt_check(job: TrainJob, config: FRPTConfig) -> None:
    """Loads and checks the backbone weights (or says which file is needed)."""
    from frpt.backbones import create_backbone

    if not job.random_init:
        create_backbone(config.backbone, tap_stride=DPP_TAP_STRIDE[config.dpp_variant], weights=job.backbone_weights)


def _frpt_train(job: TrainJob, config: FRPTConfig, root: Path) -> tuple[Any, list]:
    from frpt.train import TrainSettings, train

    settings = TrainSettings(epochs=job.epochs, batch_size=job.batch_size, lr=job.lr, seed=job.seed, device=job.device)
    weights = None if job.backbone_weights is None else str(job.backbone_weights)
    return train(config, root, settings, backbone_weights=weights, random_init=job.random_init)


class _FamilyTraining(NamedTuple):
    """How one family fills a job's defaults, builds its config, checks its inputs and trains."""

    defaults: Callable[[TrainJob], dict[str, Any]]
    config: Callable[[TrainJob], ModelConfig]
    check: Callable[[TrainJob, ModelConfig], None]
    train: Callable[[TrainJob, ModelConfig, Path], tuple[Any, list]]
    own_options: dict[str, str]  # flag -> TrainJob field, options only this family has


_TRAINING = {
    FRPTConfig.family: _FamilyTraining(
        lambda job: dict(_FRPT_DEFAULTS),
        _frpt_config,
        _frpt_check,
        _frpt_train,
        {
            "--dpp-variant": "dpp_variant",
            "--pooling": "pooling",
            "--cah-reduction": "cah_reduction",
            "--label-smoothing": "label_smoothing",
        },
    ),
    VPTConfig.family: _FamilyTraining(
        vpt_job.defaults, vpt_job.config_from_job, vpt_job.check_inputs, vpt_job.train_from_job, vpt_job.OWN_OPTIONS
    ),
}


def _family_job(job: TrainJob) -> tuple[TrainJob, _FamilyTraining]:
    """``job`` with its family's defaults filled in; refuses another family's options (they would be ignored)."""
    if job.family not in _TRAINING:
        raise FrptError(f"--family must be one of {', '.join(_TRAINING)}, got {job.family!r}")
    training = _TRAINING[job.family]
    for family, other in _TRAINING.items():
        given = [flag for flag, name in other.own_options.items() if getattr(job, name) is not None]
        if given and family != job.family:
            raise FrptError(f"{', '.join(given)}: only for --family {family}, not {job.family}; drop it")
    filled = {k: v for k, v in training.defaults(job).items() if getattr(job, k) is None}
    return dataclasses.replace(job, **filled), training


def _check_train_inputs(job: TrainJob) -> tuple[TrainJob, _FamilyTraining, ModelConfig]:
    """Everything that can be refused before data is generated or a model trained."""
    if (job.data is None) == (job.synthetic is None):
        raise FrptError("give exactly one of --data DIR or --synthetic DIR")
    job, training = _family_job(job)
    if not job.lr > 0:
        raise FrptError(f"--lr must be > 0, got {job.lr}")
    check_output_file(job.out, "--out")  # before training, so a long run is never lost at the save
    config = training.config(job)
    from frpt.train import resolve_device

    resolve_device(job.device)
    training.check(job, config)  # e.g. loads and checks the backbone weights before data is generated
    return job, training, config


def run_train_job(job: TrainJob, log=print) -> TrainReport:
    """Train the job's model family per ``job`` and save a self-contained checkpoint.

    Raises:
        FrptError: bad options or weights (before any work), a bad data folder, an unavailable device.
    """
    job, training, config = _check_train_inputs(job)
    from frpt.checkpoint import save_checkpoint
    from frpt.synthetic import SyntheticSpec, generate_synthetic
    from frpt.train import evaluate_recall

    root = job.data
    if job.synthetic is not None:
        log(f"generating the synthetic set in {job.synthetic}")
        held_out = max(2, job.synthetic_per_class // 2)
        generate_synthetic(
            job.synthetic,
            SyntheticSpec(train_per_class=job.synthetic_per_class, test_per_class=held_out, seed=job.seed),
        )
        root = job.synthetic
    model, history = training.train(job, config, root)
    save_checkpoint(model, job.out)
    test = evaluate_recall(model, root, batch_size=job.batch_size) if job.evaluate else None
    return TrainReport(str(job.out), model.parameter_report(), [h.to_dict() for h in history], test)


@dataclass(frozen=True)
class EvalJob:
    """What ``frpt-eval`` was asked to do: ``ckpt`` + ``data`` (optionally the DPP picture), or ``embeddings``."""

    ckpt: Path | None = None
    data: Path | None = None
    embeddings: Path | None = None
    split: str = "test"
    batch_size: int = 64
    show_warps: int = 0
    out: Path = Path("warps.png")
    device: str = "auto"


@dataclass(frozen=True)
class EvalReport:
    """Recall@K (``recall@K`` keys, fractions) with ``images`` and ``classes``, and the picture written if any."""

    recall: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.recall)

    def format(self) -> str:
        scores = {k: v for k, v in self.recall.items() if k.startswith("recall@")}
        text = f"{format_recall(scores)}   ({self.recall['images']} images, {self.recall['classes']} classes)"
        return text + (f"\nwrote {self.recall['warps_png']}" if "warps_png" in self.recall else "")


def _eval_checkpoint(job: EvalJob) -> dict[str, Any]:
    import torch

    from frpt.checkpoint import load_checkpoint
    from frpt.dataset_layouts import load_split
    from frpt.datasets import ImageListDataset
    from frpt.train import evaluate_recall, resolve_device
    from frpt.visualize import save_warp_grid

    model = load_checkpoint(job.ckpt, map_location=resolve_device(job.device))
    if job.show_warps and family_of(model.config) != FRPTConfig.family:
        raise FrptError(
            f"--show-warps draws FRPT's DPP warp; {job.ckpt} is a {family_of(model.config)} checkpoint: drop it"
        )
    recall = evaluate_recall(model, job.data, split=job.split, batch_size=job.batch_size)
    if job.show_warps:
        cfg = model.config
        dataset = ImageListDataset(load_split(job.data, job.split), cfg.input_size, cfg.crop_pct, decoder=cfg.decoder)
        picks = torch.linspace(0, len(dataset) - 1, min(job.show_warps, len(dataset))).round().long().tolist()
        save_warp_grid(model, torch.stack([dataset[i][0] for i in picks]), job.out)
        recall["warps_png"] = str(job.out)
    return recall


def run_eval_job(job: EvalJob) -> EvalReport:
    """Score a checkpoint on a split of a dataset, or ``frpt-embed``'s written embeddings.

    Raises:
        FrptError: the wrong combination of inputs, unreadable files, fewer than two images or classes.
    """
    if job.embeddings is not None:
        if job.ckpt is not None or job.data is not None:
            raise FrptError("give either --embeddings DIR or --ckpt with --data, not both")
        from frpt_runtime.metrics import recall_from_embeddings

        return EvalReport(recall_from_embeddings(job.embeddings))
    if job.ckpt is None or job.data is None:
        raise FrptError("give --ckpt CKPT --data DIR (or --embeddings DIR from frpt-embed)")
    if job.show_warps:
        check_output_file(job.out, "--out")
    return EvalReport(_eval_checkpoint(job))
