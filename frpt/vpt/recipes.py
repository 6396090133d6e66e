"""The paper's per-dataset ViT-S training recipes, as data (released ``config/*_small.yaml``).

A recipe is the model-config fields it sets plus the optimisation settings (:class:`frpt.vpt.train.VPTTrainSettings`
fields). Both optimisers use a cosine schedule over ``cosine_epochs`` (the authors' ``lr_cosine_length``,
longer than the run: the rate never reaches ``cosine_min`` in 15 epochs) stepped once per epoch.

* ``cub`` (CUB-200-2011, ``cub200_small.yaml``): SGD lr 5e-3 momentum 0.9, lr_proxy 0.1, decay 1e-6,
  15 epochs, cosine length 50 (min 1e-8); prompts 10 x 12 blocks (step 0), proxy prompts 3 x 12 (step 0),
  r = 0.5, embed_dim 384, batch 64 with 2 per class.
* ``cars`` (Cars-196, ``cars_small.yaml``): AdamW lr 5e-4, lr_proxy 0.01, decay 0, 50 epochs, cosine
  length 50 (params.py default; min 1e-6); prompts 80 x 11 (step 2), proxy prompts 50 x 8 (step 2), r = 0.7.

SOP and In-Shop (``*_small.yaml``/``*_basic.yaml``) are not offered: their configs draw **one** sample per
class (the GRU container update here loops over ``k >= 2``) and keep the ~11k-23k class-specific prompts and
their optimiser states in a CPU "prompt memory bank" swapped per batch, which this toolkit does not
implement.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from frpt_runtime.errors import FrptError

__all__ = ["OPTIMIZERS", "POSITIVE_MEANS", "RECIPES", "recipe"]

OPTIMIZERS = ("sgd", "adamw")  # both optimisers (model parameters, proxy bias) are of this kind
POSITIVE_MEANS = ("positive", "all")  # Proxy-Anchor's positive term over P+ (Kim et al.) or all C (the authors')

_COMMON_SETTINGS = {"batch_size": 64, "samples_per_class": 2, "momentum": 0.9}

RECIPES: Mapping[str, Mapping[str, Mapping[str, Any]]] = MappingProxyType(
    {
        "cub": MappingProxyType(
            {
                "config": MappingProxyType(
                    {
                        "embed_dim": 384,
                        "num_prompt": 10,
                        "prompt_depth": 12,
                        "prompt_block_step": 0,
                        "num_p_prompt": 3,
                        "p_prompt_depth": 12,
                        "p_prompt_block_step": 0,
                        "proxy_bias_ratio": 0.5,
                    }
                ),
                "settings": MappingProxyType(
                    _COMMON_SETTINGS
                    | {
                        "optimizer": "sgd",
                        "lr": 5e-3,
                        "lr_proxy": 0.1,
                        "weight_decay": 1e-6,
                        "epochs": 15,
                        "cosine_epochs": 50,
                        "cosine_min": 1e-8,
                    }
                ),
            }
        ),
        "cars": MappingProxyType(
            {
                "config": MappingProxyType(
                    {
                        "embed_dim": 384,
                        "num_prompt": 80,
                        "prompt_depth": 11,
                        "prompt_block_step": 2,
                        "num_p_prompt": 50,
                        "p_prompt_depth": 8,
                        "p_prompt_block_step": 2,
                        "proxy_bias_ratio": 0.7,
                    }
                ),
                "settings": MappingProxyType(
                    _COMMON_SETTINGS
                    | {
                        "optimizer": "adamw",
                        "lr": 5e-4,
                        "lr_proxy": 0.01,
                        "weight_decay": 0.0,
                        "epochs": 50,
                        "cosine_epochs": 50,
                        "cosine_min": 1e-6,
                    }
                ),
            }
        ),
    }
)


def recipe(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(config fields, settings fields)`` of recipe ``name`` as fresh dicts.

    Raises:
        FrptError: unknown name.
    """
    if name not in RECIPES:
        raise FrptError(f"unknown VPT recipe {name!r}; choose one of {sorted(RECIPES)}")
    entry = RECIPES[name]
    return dict(entry["config"]), dict(entry["settings"])
