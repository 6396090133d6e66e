"""VPT training loop on the tiny synthetic set: runs, is deterministic, returns the last epoch; evaluation and
the training augmentation reuse the shared code unchanged."""

from __future__ import annotations

import math

import pytest
import torch
from vpt_testkit import small_config

from frpt.datasets import load_split
from frpt.errors import FrptError
from frpt.train import evaluate_recall
from frpt.vpt.augment import RandomResizedCropImages
from frpt.vpt.train import VPTTrainSettings, build_optimisers, train_vpt

SETTINGS = VPTTrainSettings(epochs=2, batch_size=16, samples_per_class=2, lr=0.01, seed=3, device="cpu",
                            progress=False)


@pytest.fixture(scope="module")
def trained(synthetic_root):
    return train_vpt(small_config(), synthetic_root, SETTINGS, random_init=True)


def test_train_runs_and_returns_the_last_epoch(trained, synthetic_root) -> None:
    model, history = trained
    assert [h.epoch for h in history] == [1, 2] and all(math.isfinite(h.loss) and h.loss > 0 for h in history)
    assert history[0].lr == pytest.approx(0.01) and history[1].lr < history[0].lr  # cosine, stepped per epoch
    assert not model.training
    split = load_split(synthetic_root, "train")
    assert model.config.num_classes == len(split.classes) == 36 and model.config.class_names == split.classes
    result = evaluate_recall(model, synthetic_root)  # the FRPT evaluation path, unchanged
    assert result["images"] == 72 and 0.0 <= result["recall@1"] <= 1.0


def test_train_is_deterministic(trained, synthetic_root) -> None:
    again, history = train_vpt(small_config(), synthetic_root, SETTINGS, random_init=True)
    assert [h.loss for h in history] == [h.loss for h in trained[1]]
    assert all(torch.equal(a, b) for a, b in zip(trained[0].state_dict().values(), again.state_dict().values()))


def test_train_without_semantic_proxies_adamw(synthetic_root) -> None:
    settings = SETTINGS.replace(optimizer="adamw", epochs=1, lr=1e-3, lr_proxy=1e-2, positive_mean="all")
    model, history = train_vpt(small_config(semantic_proxies=False, bitfit=False), synthetic_root, settings,
                               random_init=True)
    assert model.semantic is None and len(history) == 1 and math.isfinite(history[0].loss)


def test_optimiser_groups(trained) -> None:
    model, _ = trained
    main, proxies, schedulers = build_optimisers(model, SETTINGS)
    main_params = {id(p) for g in main.param_groups for p in g["params"]}
    assert [id(p) for g in proxies.param_groups for p in g["params"]] == [id(model.proxy_bias)]
    assert main_params == {id(p) for p in model.trainable_parameters()} - {id(model.proxy_bias)}
    assert proxies.param_groups[0]["lr"] == SETTINGS.lr_proxy and main.param_groups[0]["momentum"] == 0.9
    assert [s.T_max for s in schedulers] == [50, 50]


def test_training_augmentation(synthetic_root) -> None:
    split = load_split(synthetic_root, "train")
    data = RandomResizedCropImages(split, 28, 0.875)
    assert data.base.size == 32  # decoded once at round(28 / 0.875), cached
    torch.manual_seed(0)
    first = data[0][0]
    torch.manual_seed(0)
    assert torch.equal(first, data[0][0]) and first.shape == (28, 28, 3) and first.dtype == torch.uint8
    assert not torch.equal(first, data[0][0])  # a fresh random crop per access


def test_too_few_classes(tmp_path, synthetic_root) -> None:
    with pytest.raises(FrptError, match="lower --batch-size"):
        train_vpt(small_config(), synthetic_root, SETTINGS.replace(batch_size=128), random_init=True)
