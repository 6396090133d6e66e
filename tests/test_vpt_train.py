"""VPT training on the tiny synthetic set through ``frpt-train --family vpt`` (the same job as FRPT's): it runs,
equals the library loop and is deterministic, returns the last epoch, saves through the shared checkpoint;
``frpt-eval`` scores it unchanged; FRPT-only options are refused in one line (exit 2)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner
from vpt_testkit import small_config

from frpt.checkpoint import load_checkpoint
from frpt.cli import eval_app, train_app
from frpt.dataset_layouts import load_split
from frpt.vpt.augment import RandomResizedCropImages
from frpt.vpt.model import VPTModel
from frpt.vpt.train import VPTTrainSettings, build_optimisers, train_vpt
from frpt_export.cli import app as export_app
from frpt_runtime.errors import FrptError

runner = CliRunner()
SETTINGS = VPTTrainSettings(
    epochs=2, batch_size=16, samples_per_class=2, lr=0.01, seed=3, device="cpu", progress=False
)  # the cub recipe with these overrides: what the command below asks for
TRAIN_ARGS = [
    "--family", "vpt", "--random-init", "--input-size", "28", "--epochs", "2", "-b", "16", "--lr", "0.01",
    "--seed", "3", "--embedding-dim", "16", "--num-prompt", "4", "--prompt-depth", "3", "--device", "cpu",
]  # fmt: skip


def _one_line_error(result, message: str) -> None:
    """Exit 2 with one error line (after any progress line), no traceback."""
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and lines[-1].startswith("error: "), result.output
    assert [ln for ln in lines if "error" in ln.lower()] == lines[-1:] and message in lines[-1], result.stderr


@pytest.fixture(scope="module")
def trained(synthetic_root, tmp_path_factory):
    """``frpt-train --family vpt --eval --json`` on the synthetic set: (its JSON report, checkpoint path, model)."""
    ckpt = tmp_path_factory.mktemp("vpt_train") / "vpt.pt"
    result = runner.invoke(train_app, ["--data", str(synthetic_root), *TRAIN_ARGS, "-o", str(ckpt), "--eval", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["command"] == "frpt-train"
    return document["result"], ckpt, load_checkpoint(ckpt)


def test_train_command_writes_the_last_epoch_and_reports(trained, synthetic_root) -> None:
    report, ckpt, model = trained
    history = report["history"]
    assert [h["epoch"] for h in history] == [1, 2] and all(math.isfinite(h["loss"]) and h["loss"] > 0 for h in history)
    assert history[0]["lr"] == pytest.approx(0.01) and history[1]["lr"] < history[0]["lr"]  # cosine, per epoch
    assert isinstance(model, VPTModel) and not model.training and report["checkpoint"] == str(ckpt)
    split = load_split(synthetic_root, "train")
    assert model.config.num_classes == len(split.classes) == 36 and model.config.class_names == split.classes
    assert model.config.prompt_counts == (4, 4, 4) and model.config.num_p_prompt == 3  # cub recipe + overrides
    assert report["parameters"]["image_branch_trainable"] < report["parameters"]["image_branch"]
    assert report["test"]["images"] == 72 and 0.0 <= report["test"]["recall@1"] <= 1.0


def test_command_equals_the_library_loop_and_is_deterministic(trained, synthetic_root) -> None:
    _, _, model = trained
    again, history = train_vpt(model.config, synthetic_root, SETTINGS, random_init=True)
    pairs = zip(model.state_dict().values(), again.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert [h.epoch for h in history] == [1, 2]


def test_eval_scores_a_vpt_checkpoint_and_refuses_the_dpp_picture(trained, synthetic_root, tmp_path) -> None:
    _, ckpt, _ = trained
    result = runner.invoke(eval_app, ["--ckpt", str(ckpt), "--data", str(synthetic_root), "--device", "cpu"])
    assert result.exit_code == 0 and result.stdout.startswith("R@1") and "72 images, 36 classes" in result.stdout
    png = tmp_path / "warps.png"
    result = runner.invoke(
        eval_app, ["--ckpt", str(ckpt), "--data", str(synthetic_root), "--show-warps", "2", "-o", str(png)]
    )
    _one_line_error(result, "--show-warps draws FRPT's DPP warp")
    assert "vpt checkpoint" in result.stderr and not png.exists()


def test_export_refuses_frpt_only_options(trained, tmp_path) -> None:
    _, ckpt, _ = trained
    out = tmp_path / "o" / "m.onnx"
    result = runner.invoke(export_app, ["onnx", "--ckpt", str(ckpt), "-o", str(out), "--lowering", "plugin"])
    _one_line_error(result, "the vpt family has no plugin lowering (it has: standard)")
    args = ["onnx", "--ckpt", str(ckpt), "-o", str(out), "--precision", "fp16", "--saliency-precision", "fp16"]
    _one_line_error(runner.invoke(export_app, args), "--saliency-precision applies to FRPT graphs")
    plan = ["trt", "--ckpt", str(ckpt), "--fp16", "-o", str(out.with_suffix(".plan"))]
    _one_line_error(runner.invoke(export_app, [*plan, "--lowering", "plugin"]), "the vpt family has no plugin lowering")
    args = [*plan, "--saliency-precision", "fp32"]
    _one_line_error(runner.invoke(export_app, args), "--saliency-precision applies to FRPT graphs")
    assert not out.parent.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--family", "vpt", "--dpp-variant", "paper"], "--dpp-variant: only for --family frpt, not vpt"),
        (["--recipe", "cars", "--no-bitfit"], "--recipe, --bitfit/--no-bitfit: only for --family vpt, not frpt"),
        (["--family", "vpt", "--backbone", "resnet50"], "--backbone must be one of vit_small_patch14_dinov2"),
        (["--backbone", "vit_small_patch16_224"], "it is a vpt backbone, add --family vpt"),
        (["--family", "vpt", "--input-size", "30"], "multiple of the patch size 14"),
        (["--family", "vpt", "--optimizer", "adamw", "--lr", "0"], "--lr must be > 0"),
        (
            ["--family", "vpt", "--batch-size", "33"],
            "--batch-size 33 must be a positive multiple of --samples-per-class 2",
        ),
    ],
)
def test_options_of_the_other_family_are_refused_before_any_work(tmp_path, args, message) -> None:
    birds = tmp_path / "birds"
    result = runner.invoke(train_app, ["--synthetic", str(birds), "--random-init", *args, "-o", str(tmp_path / "m.pt")])
    _one_line_error(result, message)
    assert not birds.exists()


def test_train_without_semantic_proxies_adamw(synthetic_root) -> None:
    settings = SETTINGS.replace(optimizer="adamw", epochs=1, lr=1e-3, lr_proxy=1e-2, positive_mean="all")
    model, history = train_vpt(
        small_config(semantic_proxies=False, bitfit=False), synthetic_root, settings, random_init=True
    )
    assert model.semantic is None and len(history) == 1 and math.isfinite(history[0].loss)


def test_optimiser_groups(trained) -> None:
    _, _, model = trained
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


def test_too_few_classes(synthetic_root) -> None:
    with pytest.raises(FrptError, match="lower --batch-size"):
        train_vpt(small_config(), synthetic_root, SETTINGS.replace(batch_size=128), random_init=True)
