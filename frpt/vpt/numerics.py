"""A timm ViT's arithmetic spelled out op by op, with its precision explicit (the exported graph's form).

PyTorch training and evaluation run timm's own modules (fused attention); an export runs the same
model chain (:meth:`frpt.vpt.model.VPTModel.tokens`) with a :class:`ViTNumerics` that evaluates every
block by :meth:`ViTNumerics.block` instead, so each dtype change is an explicit cast in the traced graph
(a strongly typed graph for TensorRT):

* residual stream, position embeddings and prompts: float32;
* LayerNorm: statistics and affine in float32 (input cast up), output cast to ``compute``;
* patch embedding, q/k/v, attention scores and weighting, output projection, MLP and GELU: ``compute``
  (the modules of :func:`compute_modules` hold weights in that dtype);
* softmax: ``softmax`` dtype (float32 unless measured safe in half);
* LayerScale: float32, after the branch is cast back up.

With ``compute = softmax = float32`` it equals timm's forward to rounding (tests: max |Δ| ~1e-6).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ViTNumerics", "FP32", "compute_modules", "check_block"]


def compute_modules(vit: nn.Module) -> list[nn.Module]:
    """The modules whose weights run in the compute dtype: patch projection, qkv, proj, fc1, fc2."""
    modules: list[nn.Module] = [vit.patch_embed.proj]
    for blk in vit.blocks:
        modules += [blk.attn.qkv, blk.attn.proj, blk.mlp.fc1, blk.mlp.fc2]
    return modules


def check_block(blk: nn.Module) -> None:
    """Refuse a block with parts :meth:`ViTNumerics.block` does not spell out (a bug, not a user error)."""
    attn = blk.attn
    plain = (attn.q_norm, attn.k_norm, getattr(attn, "norm", nn.Identity()), blk.mlp.norm,
             blk.drop_path1, blk.drop_path2)
    if getattr(attn, "gate", None) is not None or not all(isinstance(m, nn.Identity) for m in plain):
        raise TypeError(f"{type(blk).__name__} has q/k norms, gates or drop paths the explicit ViT block lacks")
    if not isinstance(blk.mlp.act, nn.GELU):
        raise TypeError(f"explicit ViT block expects GELU, got {type(blk.mlp.act).__name__}")


@dataclass(frozen=True)
class ViTNumerics:
    """Where each part of a ViT forward runs.

    Attributes:
        compute: dtype of the matmuls, attention and GELU (``float16`` for the fp16 graph).
        softmax: dtype of the attention softmax.
    """

    compute: torch.dtype = torch.float32
    softmax: torch.dtype = torch.float32

    def layer_norm(self, norm: nn.LayerNorm, x: Tensor) -> Tensor:
        """LayerNorm in float32 (statistics and affine): any ``[..., D]`` -> float32 ``[..., D]``."""
        weight = None if norm.weight is None else norm.weight.float()
        bias = None if norm.bias is None else norm.bias.float()
        return F.layer_norm(x.float(), norm.normalized_shape, weight, bias, norm.eps)

    def patch_embed(self, patch_embed: nn.Module, x: Tensor) -> Tensor:
        """``[N, 3, S, S]`` float32 -> float32 patch tokens ``[N, L, D]`` (the convolution in ``compute``)."""
        y = patch_embed.proj(x.to(self.compute))
        return y.flatten(2).transpose(1, 2).float()

    def block(self, blk: nn.Module, x: Tensor) -> Tensor:
        """One pre-norm transformer block: float32 ``[N, T, D]`` -> float32 ``[N, T, D]``."""
        attn = blk.attn
        tokens, width = x.shape[1], x.shape[2]
        h = self.layer_norm(blk.norm1, x).to(self.compute)
        qkv = attn.qkv(h).reshape(-1, tokens, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        scores = (q * attn.scale) @ k.transpose(-2, -1)
        weights = scores.to(self.softmax).softmax(dim=-1).to(self.compute)
        h = (weights @ v).transpose(1, 2).reshape(-1, tokens, width)
        x = x + blk.ls1(attn.proj(h).float())
        h = self.layer_norm(blk.norm2, x).to(self.compute)
        h = blk.mlp.fc2(blk.mlp.act(blk.mlp.fc1(h)))
        return x + blk.ls2(h.float())


FP32 = ViTNumerics()
