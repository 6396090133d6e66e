"""Self-contained FRPT checkpoints (docs/design.md §5).

A checkpoint is a ``torch.save`` file holding only plain data -- strings, ints and tensors -- so it loads
with ``torch.load(weights_only=True)`` and never unpickles an arbitrary object::

    {"format": "frpt-checkpoint", "format_version": 1, "toolkit_version": str,
     "family": "frpt" | ...,   # absent in checkpoints written before the second family: read as "frpt"
     "config": the family's config JSON (backbone id, input size, geometry, classes, pixel mean/std),
     "state_dict": {name: Tensor}}   # full weights, frozen backbone included

The backbone weights travel with the checkpoint, so loading needs neither the packaged pretrained weights nor
the user's weights file. Loading dispatches on the family through :mod:`frpt.families`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from frpt.families import create_model
from frpt.safe_load import load_plain
from frpt_runtime import __version__
from frpt_runtime.atomic import atomic_write
from frpt_runtime.errors import FrptError
from frpt_runtime.families import DEFAULT_FAMILY, config_from_dict, family_of

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = "frpt-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(model: nn.Module, path: str | Path) -> Path:
    """Write ``model`` (config + full weights) to ``path``; parent folders are created.

    Returns:
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "toolkit_version": __version__,
        "family": family_of(model.config),
        "config": model.config.to_json(),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))
    return path


def _read(path: Path, map_location: str | torch.device) -> dict:
    if not path.is_file():
        raise FrptError(f"checkpoint not found: {path}")
    payload = load_plain(path, map_location, "checkpoint", "re-save it with frpt-train")
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise FrptError(f"{path} is not an FRPT checkpoint (no '{CHECKPOINT_FORMAT}' header); save it with frpt-train")
    if payload.get("format_version") != CHECKPOINT_VERSION:
        raise FrptError(
            f"{path} has checkpoint format {payload.get('format_version')}, this toolkit reads {CHECKPOINT_VERSION}: "
            "upgrade frpt-toolkit"
        )
    return payload


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model (of any registered family) from :func:`save_checkpoint` output, in eval mode.

    Raises:
        FrptError: missing, truncated, pickled-object, foreign or other-architecture file (one line).
    """
    path = Path(path)
    payload = _read(path, map_location)
    family = payload.get("family", DEFAULT_FAMILY)
    try:
        raw_config = json.loads(payload["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FrptError(f"{path} has an unreadable model config: {exc}") from None
    config = config_from_dict(str(family), raw_config, str(path))
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise FrptError(f"{path} holds no state_dict")
    model = create_model(config, random_init=True)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        example = (missing + unexpected + wrong)[0]
        raise FrptError(
            f"{path} does not fit the {family} {config.backbone} architecture its config describes "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} mis-shaped tensors, e.g. {example})"
        )
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval()
