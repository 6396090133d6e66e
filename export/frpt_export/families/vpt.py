"""Lowering of the VPT family for export: the model with its ViT's parts swapped (docs/design.md §4b, §5).

Only the image branch is exported (the semantic proxies train only): the model's own ``prepare`` + ``embed`` chain
(:class:`~frpt_export.graph.Uint8Embedder`) on a copy of the trained :class:`~frpt.vpt.model.VPTModel` (the
original is untouched) whose ViT parts are replaced by :mod:`frpt_export.vit_lowering`'s explicit-precision
modules:

* ``vit.patch_embed.proj`` -> :class:`~frpt_export.vit_lowering.ComputeIn` (the patch convolution);
* each of ``vit.blocks`` -> :class:`~frpt_export.vit_lowering.ExplicitBlock` (plain MatMul + Softmax attention);
* ``vit.norm`` -> :class:`~frpt_export.vit_lowering.Float32LayerNorm`.

fp32: everything float32. fp16: the patch convolution, q/k/v, the attention matmuls, the output projection, the
MLP and GELU in half (their weights stored in half); the residual stream, position embeddings and prompts,
LayerNorm statistics and affine, LayerScale, the attention softmax, the image head (its LayerNorm and Linear) and
the final L2 norm in float32. The prompts, the BitFit-tuned biases and the resampled position embeddings become
constants of the graph. There is no plugin lowering (no DPP) and no saliency pass.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from frpt.vpt.model import VPTModel
from frpt_export.graph import LowerOptions, Uint8Embedder
from frpt_export.vit_lowering import ComputeIn, ExplicitBlock, Float32LayerNorm
from frpt_runtime.contract import Lowering, Precision
from frpt_runtime.errors import FrptError

__all__ = ["LOWERINGS", "complete_options", "lower"]

LOWERINGS = (Lowering.standard,)
_COMPUTE = {Precision.fp32: torch.float32, Precision.fp16: torch.float16}


def complete_options(options: LowerOptions) -> LowerOptions:
    """``options`` as this family exports them: no saliency precision (VPT has no saliency pass).

    Raises:
        FrptError: a saliency precision was asked for.
    """
    if options.saliency_precision is not None:
        raise FrptError("--saliency-precision applies to FRPT graphs (DPP saliency); a vpt model has none: drop it")
    return options


def lower(model: VPTModel, options: LowerOptions) -> nn.Module:
    """uint8 ``[N, S, S, 3]`` -> float32 ``[N, embed_dim]`` export module of ``model`` for ``options``."""
    compute = _COMPUTE[options.precision]
    graph = copy.deepcopy(model).eval()
    graph.semantic = None  # training only: keeps the copy small; the image branch never reads it
    vit = graph.vit
    vit.patch_embed.proj = ComputeIn(vit.patch_embed.proj, compute)
    vit.blocks = nn.Sequential(*(ExplicitBlock(block, compute) for block in vit.blocks))
    vit.norm = Float32LayerNorm(vit.norm)
    return Uint8Embedder(graph).eval()
