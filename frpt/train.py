"""Training and retrieval evaluation of FRPT (library functions; :mod:`frpt.cli` only parses and calls).

Only the DPP parser, CAH, head and classifier are in the optimiser (AdamW); the backbone is frozen.
Cross-entropy with the config's label smoothing. On CUDA the forward runs under float16 autocast with a
gradient scaler; on CPU in float32. Runs are deterministic for a seed on CPU (shuffling by a seeded
generator, parameters initialised after ``torch.manual_seed``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from frpt.dataset_layouts import RetrievalSplit, load_split
from frpt.datasets import ImageListDataset
from frpt.model import FRPT, create_model
from frpt_runtime.devices import parse_device
from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import MIN_INPUT_SIZE, FRPTConfig
from frpt_runtime.metrics import DEFAULT_KS, recall_at_k

__all__ = ["EpochStats", "TrainSettings", "embed_dataset", "evaluate_recall", "resolve_device", "train"]


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings (not part of the model config).

    Attributes:
        epochs: passes over the training split.
        batch_size: images per step.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        seed: seed for initialisation and shuffling.
        hflip: random horizontal flips.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available).
        progress: show a tqdm bar on stderr (only when stderr is a terminal).
    """

    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    hflip: bool = True
    device: str = "auto"
    progress: bool = True


@dataclass(frozen=True)
class EpochStats:
    """One epoch's mean loss, training accuracy and wall time."""

    epoch: int
    loss: float
    accuracy: float
    seconds: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def resolve_device(name: str) -> torch.device:
    """A ``--device`` (:mod:`frpt_runtime.devices`) as a torch device: ``auto`` is CUDA when available, else CPU.

    Raises:
        FrptError: a malformed value, CUDA asked for but unavailable, or a GPU ordinal that does not exist.
    """
    device = parse_device(name)
    if device.kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.kind == "cpu":
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise FrptError(f"--device {device} requested but CUDA is not available: use --device cpu")
    if device.ordinal >= count:
        raise FrptError(f"--device {device}: GPU {device.ordinal} does not exist ({count} present)")
    return torch.device("cuda", device.ordinal)


def _progress(iterable, settings: TrainSettings, desc: str, total: int):
    disable = not (settings.progress and sys.stderr.isatty())
    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, disable=disable, leave=False)


def _training_split(config: FRPTConfig, train_dir: str | Path) -> tuple[FRPTConfig, RetrievalSplit]:
    """The train split, and the config with the data's classes; refuses a too-small model or a one-class split."""
    if config.input_size < MIN_INPUT_SIZE:
        raise FrptError(f"input_size {config.input_size} is below the smallest trainable size {MIN_INPUT_SIZE}")
    split = load_split(train_dir, "train")
    if len(split.classes) < 2:
        raise FrptError(f"training needs at least two classes, {train_dir} has {len(split.classes)}")
    return config.replace(num_classes=len(split.classes), class_names=split.classes), split


def train(
    config: FRPTConfig,
    train_dir: str | Path,
    settings: TrainSettings = TrainSettings(),
    *,
    backbone_weights: str | None = None,
    random_init: bool = False,
) -> tuple[FRPT, list[EpochStats]]:
    """Train FRPT on the ``train`` split of ``train_dir``.

    Args:
        config: model config; ``num_classes`` and ``class_names`` are replaced by the data's.
        train_dir: dataset root (any layout :func:`frpt.datasets.load_split` knows).
        settings: optimisation settings.
        backbone_weights: backbone weights file (``resnet50``).
        random_init: random backbone (tests only).

    Returns:
        ``(model in eval mode on the training device, per-epoch stats)``.

    Raises:
        FrptError: bad data folder, undecodable image, missing weights, unavailable device.
    """
    config, split = _training_split(config, train_dir)
    device = resolve_device(settings.device)
    torch.manual_seed(settings.seed)
    model = create_model(config, backbone_weights=backbone_weights, random_init=random_init).to(device)
    data = ImageListDataset(split, config.input_size, config.crop_pct, hflip=settings.hflip, decoder=config.decoder)
    loader = DataLoader(
        data,
        batch_size=settings.batch_size,
        shuffle=True,
        drop_last=len(data) > settings.batch_size,
        generator=torch.Generator().manual_seed(settings.seed),
    )
    optimiser = torch.optim.AdamW(model.trainable_parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: list[EpochStats] = []
    for epoch in range(1, settings.epochs + 1):
        model.train()
        start, total_loss, correct, seen = time.perf_counter(), 0.0, 0, 0
        for images, labels in _progress(loader, settings, f"epoch {epoch}/{settings.epochs}", len(loader)):
            images, labels = images.to(device), labels.to(device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                logits = model(model.prepare(images)).logits
                loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            total_loss += loss.item() * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
        history.append(EpochStats(epoch, total_loss / seen, correct / seen, time.perf_counter() - start))
        print(f"epoch {epoch}: loss {total_loss / seen:.4f} acc {correct / seen:.3f}", file=sys.stderr)
    return model.eval(), history


@torch.no_grad()
def embed_dataset(
    model: FRPT, data: ImageListDataset, batch_size: int = 64, device: str | torch.device | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Embed every image of ``data`` with ``model.embed_uint8``.

    Returns:
        ``(embeddings float32 [M, D], labels int64 [M])``.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device)
    chunks, labels = [], []
    for images, batch_labels in DataLoader(data, batch_size=batch_size, shuffle=False):
        chunks.append(model.embed_uint8(images.to(device)).float().cpu().numpy())
        labels.append(batch_labels.numpy())
    return np.concatenate(chunks), np.concatenate(labels).astype(np.int64)


def evaluate_recall(
    model: FRPT,
    data_dir: str | Path,
    *,
    split: str = "test",
    batch_size: int = 64,
    ks: tuple[int, ...] = DEFAULT_KS,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Leave-one-out Recall@K of ``model`` on a split of ``data_dir`` (held-out classes by default).

    Returns:
        ``{"recall@1": ..., "recall@2": ..., ...}`` plus ``"images"`` (count) and ``"classes"``.
    """
    cfg = model.config
    data = ImageListDataset(load_split(data_dir, split), cfg.input_size, cfg.crop_pct, decoder=cfg.decoder)
    embeddings, labels = embed_dataset(model, data, batch_size, device)
    usable = tuple(k for k in ks if k < len(labels))
    result: dict[str, float] = dict(recall_at_k(embeddings, labels, usable))
    result.update(images=len(labels), classes=len(data.split.classes))
    return result
