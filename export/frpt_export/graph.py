"""What every family's export graph shares: the lowering options and the uint8-in wrapper (docs/design.md §5).

:class:`Uint8Embedder` is the traced module: ``images`` uint8 ``[N, S, S, 3]`` -> the model's own ``prepare``
(Cast -> Transpose -> /255 -> (x - mean) / std, float32 ``[N, 3, S, S]``) -> the model's own ``embed``
(L2-normalised float32 ``[N, D]``). The model it wraps is a family-lowered copy (:mod:`frpt_export.families`).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from frpt_runtime.contract import Lowering, Precision

__all__ = ["LowerOptions", "Uint8Embedder"]


@dataclass(frozen=True)
class LowerOptions:
    """How to lower a model.

    Attributes:
        lowering: ``standard`` (plain ONNX ops) or ``plugin`` (the custom node; FRPT only).
        precision: the graph's compute precision (I/O stays uint8 in / float32 out).
        saliency_precision: FRPT fp16 graphs: the saliency pass's precision (float32 by default).
    """

    lowering: Lowering = Lowering.standard
    precision: Precision = Precision.fp32
    saliency_precision: Precision = Precision.fp32


class Uint8Embedder(nn.Module):
    """``images`` uint8 ``[N, S, S, 3]`` -> ``model.embed(model.prepare(images))`` float32 ``[N, D]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model.embed(self.model.prepare(images))
