"""The VPT family's exported computation: uint8 images -> L2-normalised float32 embedding (DESIGN.md §2b, §3).

Only the image branch is exported (semantic proxies are training-only), through the model's own chain
(:meth:`frpt.vpt.model.VPTModel.embed`) with explicit numerics (:class:`frpt.vpt.numerics.ViTNumerics`), so
PyTorch and the graph cannot drift apart. The prompts, the BitFit-tuned biases and the resampled position
embeddings become constants of the graph.

Graph: ``images`` uint8 ``[N, S, S, 3]`` -> Cast -> Transpose -> /255 -> (x - mean)/std (float32, as
:meth:`VPTModel.prepare`) -> patch embedding -> [prompts, CLS, patches] per block -> final norm -> CLS ->
LayerNorm -> Linear -> L2 normalise -> ``embedding`` float32 ``[N, D]``; batch axis dynamic.

Precision, expressed by explicit casts (a strongly typed graph; TensorRT 10.x strongly-typed, 11.x and
RTX build it unchanged):

* ``fp32``: everything float32.
* ``fp16``: the patch-embedding convolution, q/k/v, the attention matmuls, the output projection, the MLP
  and GELU in half (their weights stored in half); the residual stream, position embeddings and prompts,
  LayerNorm statistics and affine, LayerScale, the attention softmax (``softmax_precision="fp32"``,
  default), the image head (its LayerNorm and Linear) and the final L2 norm in float32.
  ``softmax_precision="fp16"`` puts the softmax in half too (measured: see the VPT note / README).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from frpt.errors import FrptError
from frpt.vpt.model import VPTModel
from frpt.vpt.numerics import ViTNumerics, compute_modules
from frpt_runtime.parity import PRECISIONS

__all__ = ["VPTEmbeddingGraph"]

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


class VPTEmbeddingGraph(nn.Module):
    """The exported module of a trained :class:`VPTModel` (built without modifying it).

    Args:
        model: the trained model.
        precision: ``fp32`` or ``fp16`` (see the module doc; for fp16 the ViT's matmul weights are a half copy).
        softmax_precision: with ``fp16``, the attention softmax's precision (``fp32`` default).

    Shapes: ``images`` uint8 ``[N, S, S, 3]`` -> float32 ``[N, D]``.

    Raises:
        FrptError: unknown precision.
    """

    def __init__(self, model: VPTModel, precision: str = "fp32", softmax_precision: str = "fp32") -> None:
        super().__init__()
        for name, value in (("--precision", precision), ("--softmax-precision", softmax_precision)):
            if value not in PRECISIONS:
                raise FrptError(f"{name} must be one of {PRECISIONS}, got {value!r}")
        model = model.eval()
        if precision == "fp16":
            model = copy.deepcopy(model)
            for module in compute_modules(model.vit):
                module.half()
        self.model = model
        compute = _DTYPES[precision]
        self.numerics = ViTNumerics(compute=compute, softmax=compute if softmax_precision == "fp16" else torch.float32)

    def forward(self, images: Tensor) -> Tensor:
        return self.model.embed(self.model.prepare(images), self.numerics)
