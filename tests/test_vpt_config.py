"""VPTConfig: data round trip, validation through the shared field checks, backbone table vs timm, registry and
export metadata; recipes and settings."""

from __future__ import annotations

import json

import pytest

from frpt.vpt.recipes import RECIPES, recipe
from frpt.vpt.train import VPTTrainSettings
from frpt_runtime.contract import ExportMetadata, Family, Lowering, Precision
from frpt_runtime.errors import FrptError
from frpt_runtime.families import FAMILIES, family_of
from frpt_runtime.families.vpt import VIT_BACKBONES, VPTConfig, prompt_counts


def test_round_trip_and_family() -> None:
    cfg = VPTConfig(input_size=112, class_names=("a", "b"), num_classes=2)
    assert VPTConfig.family == "vpt" and "family" not in cfg.to_dict()
    assert VPTConfig.from_json(cfg.to_json()) == cfg and VPTConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(embed_dim=128).embed_dim == 128
    assert cfg.prompt_counts == (10,) * 12 and cfg.geometry.patch == 14


def test_prompt_counts_shrink_per_block() -> None:
    assert prompt_counts(80, 11, 2) == tuple(80 - 2 * i for i in range(11))
    assert prompt_counts(5, 4, 2) == (5, 3, 1, 0)
    assert prompt_counts(3, 0, 0) == ()


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"backbone": "vit_base_patch16_224"}, "backbone must be one of"),
        ({"input_size": 100}, "multiple of the patch size 14"),
        ({"input_size": 14}, ">= 28"),
        ({"input_size": "224"}, "input_size must be an integer"),
        ({"crop_pct": 0.0}, "crop_pct"),
        ({"pixel_std": (0.5, 0.0, 0.5)}, "pixel_std must be a list of 3 values, each a number > 0"),
        ({"pixel_mean": [0.5, 0.5]}, "pixel_mean must be a list of 3 values"),
        ({"embed_dim": 0}, "embed_dim"),
        ({"num_prompt": -1}, r"num_prompt must be an integer in \[0, 4096\]"),
        ({"prompt_depth": 13}, "prompt_depth must be <= 12"),
        ({"p_prompt_block_step": -2}, "p_prompt_block_step must be an integer >= 0"),
        ({"proxy_bias_ratio": 1.5}, "proxy_bias_ratio"),
        ({"bitfit": 1}, "bitfit must be true or false"),
        ({"embed_dim": 16.0}, "embed_dim must be an integer"),
        ({"num_classes": 3, "class_names": ("a",)}, "1 class_names for num_classes=3"),
        ({"mystery": 1}, "unknown VPT config keys"),
    ],
)
def test_bad_values_refused_in_one_line(changes: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        VPTConfig.from_dict(VPTConfig().to_dict() | changes)
    assert "\n" not in str(info.value)


def test_for_backbone_uses_pretrained_stats() -> None:
    cfg = VPTConfig.for_backbone("vit_small_patch16_224", input_size=112)
    assert cfg.pixel_mean == cfg.pixel_std == (0.5, 0.5, 0.5) and cfg.input_size == 112
    with pytest.raises(ValueError, match="backbone must be one of"):
        VPTConfig.for_backbone("resnet50")


@pytest.mark.parametrize("name", sorted(VIT_BACKBONES))
def test_backbone_table_matches_timm(name: str) -> None:
    import timm

    geo = VIT_BACKBONES[name]
    vit = timm.create_model(name, pretrained=False, num_classes=0, img_size=geo.patch * 2)
    cfg = vit.pretrained_cfg
    assert (vit.patch_embed.patch_size[0], vit.embed_dim, len(vit.blocks)) == (geo.patch, geo.width, geo.depth)
    assert tuple(cfg["mean"]) == geo.pixel_mean and tuple(cfg["std"]) == geo.pixel_std


def test_registered_and_read_from_export_metadata() -> None:
    """The runtime's registry knows the family; an export's metadata parses into a VPTConfig (torch-free path)."""
    cfg = VPTConfig(input_size=56, num_classes=2)
    assert FAMILIES["vpt"] is VPTConfig and Family("vpt") == "vpt" and family_of(cfg) == "vpt"
    meta = ExportMetadata(cfg, Precision.fp16, Lowering.standard, 17, "0")
    props = meta.to_props()
    assert props["frpt.family"] == "vpt" and "frpt.saliency_precision" not in props  # FRPT-only key
    assert ExportMetadata.from_props(props, "m.onnx") == meta
    bad = dict(props, **{"frpt.config": json.dumps(cfg.to_dict() | {"num_prompt": 1.5})})
    with pytest.raises(FrptError, match=r"m.onnx frpt.config metadata: invalid vpt model config: num_prompt must be"):
        ExportMetadata.from_props(bad, "m.onnx")


def test_recipes_are_the_papers_vit_s_configs() -> None:
    cub_cfg, cub = recipe("cub")
    assert (cub["optimizer"], cub["lr"], cub["lr_proxy"], cub["weight_decay"], cub["epochs"]) == (
        "sgd",
        5e-3,
        0.1,
        1e-6,
        15,
    )
    assert (
        cub_cfg["num_prompt"],
        cub_cfg["prompt_depth"],
        cub_cfg["num_p_prompt"],
        cub_cfg["p_prompt_depth"],
        cub_cfg["proxy_bias_ratio"],
    ) == (10, 12, 3, 12, 0.5)
    cars_cfg, cars = recipe("cars")
    assert (cars["optimizer"], cars["lr"], cars["lr_proxy"], cars["epochs"]) == ("adamw", 5e-4, 0.01, 50)
    assert VPTConfig(**cars_cfg).prompt_counts == tuple(80 - 2 * i for i in range(11))
    assert VPTConfig(**cars_cfg).p_prompt_counts == tuple(50 - 2 * i for i in range(8))
    assert set(RECIPES) == {"cub", "cars"}
    for name in RECIPES:
        VPTTrainSettings.from_recipe(name)  # every recipe is a valid settings object
    assert VPTTrainSettings() == VPTTrainSettings.from_recipe("cub")
    with pytest.raises(FrptError, match="unknown VPT recipe 'sop'"):
        recipe("sop")


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"optimizer": "adam"}, "--optimizer"),
        ({"positive_mean": "x"}, "--positive-mean"),
        ({"epochs": 0}, "--epochs"),
        ({"crop_scale": (0.5, 0.2)}, "crop scale"),
    ],
)
def test_bad_settings(changes: dict, match: str) -> None:
    with pytest.raises(FrptError, match=match):
        VPTTrainSettings(**changes)
