"""Training loop and retrieval evaluation on the tiny synthetic set (CPU, random backbone for speed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from frpt.backbones import create_backbone
from frpt.train import TrainSettings, evaluate_recall, resolve_device, train
from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import FRPTConfig
from frpt_runtime.images import load_image

SETTINGS = TrainSettings(epochs=2, batch_size=24, lr=1e-2, device="cpu", progress=False)


@pytest.fixture(scope="module")
def trained(synthetic_root):
    config = FRPTConfig(input_size=64, label_smoothing=0.1)
    return train(config, synthetic_root, SETTINGS, random_init=True)


def test_train_history_and_config(trained, synthetic_root) -> None:
    model, history = trained
    assert [h.epoch for h in history] == [1, 2]
    assert all(h.loss > 0 and 0 <= h.accuracy <= 1 for h in history)
    assert history[1].loss < history[0].loss  # it learns something on the training classes
    assert model.config.num_classes == 36 and len(model.config.class_names) == 36
    assert model.config.class_names == tuple(sorted(p.name for p in (synthetic_root / "train").iterdir()))
    assert not model.training


def test_backbone_untouched_by_training(trained) -> None:
    model, _ = trained
    torch.manual_seed(SETTINGS.seed)  # train() seeds before building, so a fresh random backbone matches
    fresh = create_backbone("efficientnet_lite0", tap_stride=16, random_init=True)
    for (k, a), b in zip(model.backbone.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_training_is_deterministic(trained, synthetic_root) -> None:
    model, history = trained
    again, history_again = train(
        FRPTConfig(input_size=64, label_smoothing=0.1), synthetic_root, SETTINGS, random_init=True
    )
    assert [h.loss for h in history] == [h.loss for h in history_again]
    assert torch.equal(model.parser.conv.weight, again.parser.conv.weight)


def _brute_force_recall(embeddings: np.ndarray, labels: list[str], k: int) -> float:
    """Leave-one-out Recall@K by a plain loop: cosine, ties to the lower index."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    hits = 0
    for query in range(len(labels)):
        others = sorted((-float(unit[query] @ unit[j]), j) for j in range(len(labels)) if j != query)
        hits += any(labels[j] == labels[query] for _, j in others[:k])
    return hits / len(labels)


def test_evaluate_recall(trained, synthetic_root) -> None:
    """The figures of an independent computation: the test images decoded one by one, embedded in batches of 8
    (not the evaluation's 16), labelled by their folder, ranked by a plain loop."""
    model, _ = trained
    result = evaluate_recall(model, synthetic_root, batch_size=16)
    assert result["images"] == 72 and result["classes"] == 36
    files = sorted(p for p in (synthetic_root / "test").rglob("*") if p.is_file())
    cfg = model.config
    pixels = torch.from_numpy(np.stack([load_image(p, cfg.input_size, cfg.crop_pct, cfg.decoder) for p in files]))
    embeddings = np.concatenate([model.embed_uint8(pixels[i : i + 8]).numpy() for i in range(0, len(files), 8)])
    labels = [p.parent.name for p in files]
    for k in (1, 2, 4, 8):
        assert result[f"recall@{k}"] == pytest.approx(_brute_force_recall(embeddings, labels, k), abs=1e-12), k


def test_errors(tmp_path) -> None:
    (tmp_path / "only" / "a").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "only" / "a" / "x.png")
    with pytest.raises(FrptError, match="two classes"):
        train(FRPTConfig(input_size=64), tmp_path / "only", SETTINGS, random_init=True)
    if not torch.cuda.is_available():
        with pytest.raises(FrptError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for the AMP training path")
def test_cuda_amp_training(synthetic_root) -> None:
    settings = TrainSettings(epochs=1, batch_size=24, device="cuda", progress=False)
    model, history = train(FRPTConfig(input_size=64), synthetic_root, settings, random_init=True)
    assert next(model.parameters()).is_cuda and history[0].loss == history[0].loss  # finite, not NaN
    result = evaluate_recall(model, synthetic_root)
    assert 0 <= result["recall@1"] <= 1
