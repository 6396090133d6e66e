"""Shared fixtures: small configs and one pretrained Lite0 backbone per session (CPU budget)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from frpt_runtime.families.frpt import FRPTConfig

# Subprocesses the tests start (console scripts, python -c) import this checkout's packages, whatever the
# venv's editable install points at: the same three roots pytest's own pythonpath uses.
_REPO = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(_REPO), str(_REPO / "export"), str(_REPO / "runtime"), *filter(None, [os.environ.get("PYTHONPATH")])]
)


@pytest.fixture
def tiny_config() -> FRPTConfig:
    """A fast FRPT config: Lite0 geometry, 64 px input, 5 classes."""
    return FRPTConfig(input_size=64, num_classes=5)


@pytest.fixture(scope="session")
def lite0_pretrained():
    """The pretrained EfficientNet-Lite0 backbone (stride-16 tap, ImageNet classifier kept); built once."""
    from frpt.backbones import create_backbone

    return create_backbone("efficientnet_lite0", tap_stride=16, keep_classifier=True)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A tiny synthetic birds set (64 px; 2 train / 2 test images per class, 36 + 36 classes)."""
    from frpt.synthetic import SyntheticSpec, generate_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, SyntheticSpec(image_size=64, train_per_class=2, test_per_class=2, seed=1))
    return root
