"""Training of the VPT semantic-proxy family (library function; a CLI only parses and calls).

Provenance: released ``main.py`` of Ren et al. (facts only): two optimisers of the same kind (SGD with
momentum, or AdamW) -- one for every trainable model parameter at ``lr`` (BitFit biases, prompts, both
heads, the GRU cell, the class-specific prompts), one for ``proxy_bias`` at ``lr_proxy`` -- both with
``weight_decay`` and a cosine schedule (``CosineAnnealingLR(T_max=cosine_epochs, eta_min=cosine_min)``)
stepped per epoch. A step: image embeddings + the batch's proxies (:meth:`VPTModel.loss_proxies`) ->
Proxy-Anchor loss -> backward -> both optimisers step. Batches are class-balanced
(:class:`ClassBalancedBatchSampler`), images RandomResizedCrop + flip (:class:`RandomResizedCropImages`).

On CUDA the forward runs under float16 autocast with a gradient scaler; on CPU in float32. Deterministic
for a seed on CPU. No evaluation happens during training: the model returned is the **last** epoch's
(the authors evaluate on the test split every epoch and report the best epoch; that selects on test data).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from frpt.dataset_layouts import load_split
from frpt.train import resolve_device
from frpt.vpt.augment import DEFAULT_SCALE, RandomResizedCropImages
from frpt.vpt.loss import proxy_anchor_loss
from frpt.vpt.model import VPTModel, create_model
from frpt.vpt.recipes import OPTIMIZERS, POSITIVE_MEANS, recipe
from frpt.vpt.sampler import ClassBalancedBatchSampler, check_batch_layout
from frpt_runtime.errors import FrptError
from frpt_runtime.families.vpt import VPTConfig

__all__ = ["VPTEpochStats", "VPTTrainSettings", "build_optimisers", "train_vpt"]


@dataclass(frozen=True)
class VPTTrainSettings:
    """Optimisation settings (not part of the model config); defaults = the ``cub`` recipe.

    Attributes:
        epochs: passes (``len(train) // batch_size`` class-balanced batches each).
        batch_size, samples_per_class: batch layout (``batch_size // k`` classes x ``k``).
        optimizer: ``sgd`` (with ``momentum``) or ``adamw``.
        lr: rate of the model parameters; lr_proxy: rate of ``proxy_bias``.
        weight_decay: both optimisers.
        momentum: SGD momentum.
        cosine_epochs, cosine_min: the cosine schedule's ``T_max`` (epochs) and floor.
        alpha, delta, positive_mean: Proxy-Anchor settings (:func:`frpt.vpt.loss.proxy_anchor_loss`).
        crop_scale: RandomResizedCrop area range.
        hflip: random horizontal flips.
        seed: seed for initialisation, sampling and augmentation.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        progress: tqdm bar on stderr (only when stderr is a terminal).
    """

    epochs: int = 15
    batch_size: int = 64
    samples_per_class: int = 2
    optimizer: str = "sgd"
    lr: float = 5e-3
    lr_proxy: float = 0.1
    weight_decay: float = 1e-6
    momentum: float = 0.9
    cosine_epochs: int = 50
    cosine_min: float = 1e-8
    alpha: float = 32.0
    delta: float = 0.1
    positive_mean: str = "positive"
    crop_scale: tuple[float, float] = DEFAULT_SCALE
    hflip: bool = True
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise FrptError(f"--optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.positive_mean not in POSITIVE_MEANS:
            raise FrptError(f"--positive-mean must be one of {POSITIVE_MEANS}, got {self.positive_mean!r}")
        if self.epochs < 1 or self.cosine_epochs < 1:
            raise FrptError(f"--epochs and the cosine length must be >= 1, got {self.epochs}, {self.cosine_epochs}")
        check_batch_layout(self.batch_size, self.samples_per_class)
        if not 0.0 < self.crop_scale[0] <= self.crop_scale[1] <= 1.0:
            raise FrptError(f"crop scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")

    @classmethod
    def from_recipe(cls, name: str, **changes: Any) -> VPTTrainSettings:
        """The settings of recipe ``name`` (:data:`frpt.vpt.recipes.RECIPES`), ``changes`` applied on top."""
        return cls(**(recipe(name)[1] | changes))

    def replace(self, **changes: Any) -> VPTTrainSettings:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class VPTEpochStats:
    """One epoch's mean loss, model learning rate used and wall time."""

    epoch: int
    loss: float
    lr: float
    seconds: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def build_optimisers(model: VPTModel, settings: VPTTrainSettings):
    """``(model optimiser, proxy optimiser, [their cosine schedulers])`` for ``model``'s trainable parameters."""
    proxy = [model.proxy_bias]
    rest = [p for p in model.trainable_parameters() if p is not model.proxy_bias]

    def make(params, lr):
        if settings.optimizer == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
        return torch.optim.AdamW(params, lr=lr, weight_decay=settings.weight_decay)

    main, proxies = make(rest, settings.lr), make(proxy, settings.lr_proxy)
    schedulers = [
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.cosine_epochs, eta_min=settings.cosine_min)
        for opt in (main, proxies)
    ]
    return main, proxies, schedulers


def _progress(iterable, settings: VPTTrainSettings, desc: str, total: int):
    disable = not (settings.progress and sys.stderr.isatty())
    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, disable=disable, leave=False)


def _step(model: VPTModel, images, labels, optimisers, scaler, settings: VPTTrainSettings) -> float:
    """One Proxy-Anchor step on a batch (uint8 ``[B, S, S, 3]``, int64 ``[B]``); both optimisers step. Loss value."""
    device = images.device
    with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
        x = model.prepare(images)
        embeddings = model(x)
        proxies = model.loss_proxies(x, labels)  # after the image pass, as the authors' loop
        loss = proxy_anchor_loss(embeddings, labels, proxies, settings.alpha, settings.delta, settings.positive_mean)
    for optimiser in optimisers:
        optimiser.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    for optimiser in optimisers:
        scaler.step(optimiser)
    scaler.update()
    return loss.item()


def train_vpt(
    config: VPTConfig,
    train_dir: str | Path,
    settings: VPTTrainSettings = VPTTrainSettings(),
    *,
    backbone_weights: str | Path | None = None,
    random_init: bool = False,
) -> tuple[VPTModel, list[VPTEpochStats]]:
    """Train the VPT family on the ``train`` split of ``train_dir``.

    Args:
        config: model config; ``num_classes`` and ``class_names`` are replaced by the data's.
        train_dir: dataset root (any layout :func:`frpt.dataset_layouts.load_split` knows).
        settings: optimisation settings.
        backbone_weights: backbone weights file (see :func:`frpt.vpt.model.create_model`).
        random_init: random backbone (tests only).

    Returns:
        ``(model of the last epoch, in eval mode on the training device, per-epoch stats)``.

    Raises:
        FrptError: bad data folder, undecodable image, too few classes for the batch layout, missing or
            wrong weights, unavailable device.
    """
    split = load_split(train_dir, "train")
    if len(split.classes) < 2:
        raise FrptError(f"training needs at least two classes, {train_dir} has {len(split.classes)}")
    config = config.replace(num_classes=len(split.classes), class_names=split.classes)
    device = resolve_device(settings.device)
    sampler = ClassBalancedBatchSampler(split.labels, settings.batch_size, settings.samples_per_class, settings.seed)
    torch.manual_seed(settings.seed)
    model = create_model(config, backbone_weights=backbone_weights, random_init=random_init).to(device)
    data = RandomResizedCropImages(
        split, config.input_size, config.crop_pct, settings.crop_scale, hflip=settings.hflip, decoder=config.decoder
    )
    loader = DataLoader(data, batch_sampler=sampler)
    main, proxies, schedulers = build_optimisers(model, settings)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    history: list[VPTEpochStats] = []
    for epoch in range(1, settings.epochs + 1):
        model.train()
        start, total_loss, steps, lr = time.perf_counter(), 0.0, 0, main.param_groups[0]["lr"]
        for images, labels in _progress(loader, settings, f"epoch {epoch}/{settings.epochs}", len(loader)):
            total_loss += _step(model, images.to(device), labels.to(device), (main, proxies), scaler, settings)
            steps += 1
        for scheduler in schedulers:
            scheduler.step()
        history.append(VPTEpochStats(epoch, total_loss / steps, lr, time.perf_counter() - start))
        print(f"epoch {epoch}: loss {total_loss / steps:.4f} lr {lr:.2e}", file=sys.stderr)
    return model.eval(), history
