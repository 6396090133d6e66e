"""Lowering of the FRPT family for export: the model with its lowerable submodules swapped (docs/design.md §5).

On a copy of the trained :class:`~frpt.model.FRPT` (the original is untouched):

* ``backbone``'s TF-"same" convolutions -> :class:`~frpt_export.lowering.StaticPadConv2d`, their padding fixed at
  the model's input size (one ``Conv`` node each instead of a shape-arithmetic subgraph);
* ``saliency`` -> :class:`~frpt_export.lowering.MatMulSaliencyMap` (float32);
* ``sampler`` -> :class:`~frpt_export.lowering.MatMulSampler` (standard) or
  :class:`~frpt_export.lowering.PluginSampler` (plugin), float32 grid and resampling;
* ``cah.norm`` -> :class:`~frpt_export.lowering.OnnxInstanceNorm` (InstanceNorm statistics in float32);
* fp16: ``backbone`` -> :class:`~frpt_export.lowering.HalfBackbone` (the full pass's convolutions/activations
  in half); the saliency pass (backbone to the tap + parser) stays float32 unless ``saliency_precision`` is
  fp16, because the DPP warp amplifies the tap's fp16 rounding into a moved sampling grid.

CAH's SE weights, pooling, the head and the L2 norm then run in float32 on the float32 feature map.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from frpt.model import FRPT
from frpt_export.graph import LowerOptions, Uint8Embedder
from frpt_export.lowering import (
    HalfBackbone,
    MatMulSaliencyMap,
    OnnxInstanceNorm,
    make_sampler,
    static_same_padding,
)
from frpt_runtime.contract import Lowering, Precision
from frpt_runtime.errors import FrptError

__all__ = ["LOWERINGS", "complete_options", "lower"]

LOWERINGS = (Lowering.standard, Lowering.plugin)


def _tap_hw(model: FRPT) -> tuple[int, int]:
    size = model.config.input_size
    with torch.no_grad():
        return tuple(model.backbone.forward_tap(torch.zeros(1, 3, size, size)).shape[-2:])


def complete_options(options: LowerOptions) -> LowerOptions:
    """``options`` with this family's default saliency precision (float32) filled in.

    Raises:
        FrptError: a half saliency pass asked for in an fp32 graph.
    """
    saliency = options.saliency_precision or Precision.fp32
    if options.precision == Precision.fp32 and saliency == Precision.fp16:
        raise FrptError("--saliency-precision fp16 applies to fp16 graphs: add --precision fp16, or drop it")
    return dataclasses.replace(options, saliency_precision=saliency)


def lower(model: FRPT, options: LowerOptions) -> nn.Module:
    """uint8 ``[N, S, S, 3]`` -> float32 ``[N, D]`` export module of ``model`` for ``options``."""
    cfg = model.config
    graph = copy.deepcopy(model).eval()
    size = cfg.input_size
    static_same_padding(graph.backbone, lambda: graph.backbone.forward_features(torch.zeros(1, 3, size, size)))
    graph.saliency = MatMulSaliencyMap(_tap_hw(model), cfg.grid)
    graph.sampler = make_sampler(options.lowering, cfg.grid, cfg.pad, cfg.fwhm, (size, size))
    graph.cah.norm = OnnxInstanceNorm()
    if options.precision == Precision.fp16:
        half_tap = options.saliency_precision == Precision.fp16
        graph.backbone = HalfBackbone(graph.backbone, half_tap)
        if half_tap:
            graph.parser = graph.parser.half()
    return Uint8Embedder(graph).eval()
