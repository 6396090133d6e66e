"""The FRPT model: frozen backbone + DPP + CAH + embedding head + classifier (docs/design.md §4).

Provenance: FRPT (Wang et al., AAAI 2023), Fig. 2 and §3; released code (fast-reid based).

Forward pass on a normalised image ``x`` ``[N, 3, S, S]`` float32 -- one chain, used by training, evaluation and
the export (which swaps the lowerable submodules of a copy, :mod:`frpt_export.families.frpt`):

1. ``tap = backbone.forward_tap(x)`` -- the saliency pass runs the backbone only up to the tap;
2. ``A = saliency(parser(tap))`` -- :class:`~frpt.dpp.SaliencyMap`, ``[N, 1, g, g]`` float32, sums to 1;
3. ``x' = sampler(x, A)`` -- structure modification (:class:`~frpt.dpp.ReferenceSampler`);
4. ``F = backbone.forward_features(x')``, ``F' = cah(F)``, ``e = head(F')`` ``[N, D]`` unnormalised;
5. outputs: ``embedding = normalize(e)`` (L2, eps 1e-12), ``logits = classifier(e)``, ``saliency = A``.

Only the parser, CAH, head and classifier train; :meth:`FRPT.prepare` is the exact in-graph input
normalisation (uint8 NHWC -> Cast -> NCHW -> /255 -> (x - mean) / std).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from frpt.backbones import FrozenBackbone, create_backbone
from frpt.cah import CAH, EmbeddingHead
from frpt.dpp import ContentParser, ReferenceSampler, SaliencyMap
from frpt.embedding_model import EmbeddingModel
from frpt_runtime.families.frpt import DPP_TAP_STRIDE, FRPTConfig

__all__ = ["FRPT", "FRPTOutput", "create_model"]


class FRPTOutput(NamedTuple):
    """FRPT forward result.

    Attributes:
        embedding: ``[N, D]`` float32, L2-normalised.
        logits: ``[N, num_classes]`` classifier logits.
        saliency: ``[N, 1, g, g]`` float32 DPP saliency map.
    """

    embedding: Tensor
    logits: Tensor
    saliency: Tensor


def _l2(embedding: Tensor) -> Tensor:
    return F.normalize(embedding.float(), dim=1, eps=1e-12)


class FRPT(EmbeddingModel):
    """Fine-grained Retrieval Prompt Tuning on a frozen backbone.

    Args:
        config: the model configuration (geometry, variants, classes).
        backbone: a frozen backbone whose tap stride matches ``config.dpp_variant``.
    """

    def __init__(self, config: FRPTConfig, backbone: FrozenBackbone) -> None:
        super().__init__()
        if backbone.tap_stride != DPP_TAP_STRIDE[config.dpp_variant]:
            raise ValueError(f"{config.dpp_variant} DPP needs a stride-{DPP_TAP_STRIDE[config.dpp_variant]} tap")
        self.config = config
        self.backbone: nn.Module = backbone
        self.parser: nn.Module = ContentParser(backbone.tap_channels, config.dpp_variant, config.paper_kernel)
        self.saliency: nn.Module = SaliencyMap(config.grid)
        self.sampler: nn.Module = ReferenceSampler(config.pad, config.fwhm)
        self.cah = CAH(backbone.num_features, config.cah_reduction)
        self.head = EmbeddingHead(backbone.num_features, config.pooling, config.gem_p, config.embedding_dim)
        self.classifier = nn.Linear(self.head.embedding_dim, config.num_classes)
        self.register_buffer("pixel_mean", torch.tensor(config.pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.pixel_std).view(1, 3, 1, 1), persistent=False)

    @property
    def embedding_dim(self) -> int:
        """Embedding width ``D``."""
        return self.head.embedding_dim

    def prepare(self, images: Tensor) -> Tensor:
        """uint8 ``[N, H, W, 3]`` RGB -> normalised float32 ``[N, 3, H, W]`` (Cast first, as in the graph)."""
        if images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be [N, H, W, 3], got {tuple(images.shape)}")
        x = images.to(torch.float32).permute(0, 3, 1, 2) / 255.0
        return (x - self.pixel_mean) / self.pixel_std

    def perturb(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """DPP alone: normalised ``[N, 3, S, S]`` -> ``(saliency [N, 1, g, g] float32, warped [N, 3, S, S])``."""
        saliency = self.saliency(self.parser(self.backbone.forward_tap(x)))
        return saliency, self.sampler(x, saliency)

    def _pooled(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(saliency [N, 1, g, g], unnormalised embedding [N, D])`` of a normalised ``[N, 3, S, S]`` batch."""
        saliency, warped = self.perturb(x)
        return saliency, self.head(self.cah(self.backbone.forward_features(warped)))

    def embed(self, x: Tensor) -> Tensor:
        """Normalised float32 ``[N, 3, S, S]`` -> L2-normalised float32 embedding ``[N, D]`` (no classifier)."""
        return _l2(self._pooled(x)[1])

    def forward(self, x: Tensor) -> FRPTOutput:
        """Normalised float32 ``[N, 3, S, S]`` -> :class:`FRPTOutput`."""
        saliency, embedding = self._pooled(x)
        return FRPTOutput(_l2(embedding), self.classifier(embedding), saliency)

    def parameter_report(self) -> dict[str, int]:
        """``{"trainable": ..., "total": ..., "backbone": ...}`` parameter counts."""
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.trainable_parameters())
        backbone = sum(p.numel() for p in self.backbone.parameters())
        return {"trainable": trainable, "total": total, "backbone": backbone}


def create_model(
    config: FRPTConfig,
    *,
    pretrained: bool = True,
    backbone_weights: str | None = None,
    random_init: bool = False,
) -> FRPT:
    """Build an FRPT model for ``config``.

    Args:
        config: model configuration; ``config.backbone`` names a registered backbone.
        pretrained: load ImageNet weights (packaged for ``efficientnet_lite0``, from ``backbone_weights``
            otherwise). ``pretrained=False`` is the same as ``random_init=True``.
        backbone_weights: path of a backbone weights file (required for ``resnet50`` unless random).
        random_init: random backbone weights (tests, or before loading a checkpoint).

    Raises:
        FrptError: unknown backbone, missing/unreadable weights.
    """
    backbone = create_backbone(
        config.backbone,
        tap_stride=DPP_TAP_STRIDE[config.dpp_variant],
        weights=backbone_weights,
        random_init=random_init or not pretrained,
    )
    return FRPT(config, backbone)
