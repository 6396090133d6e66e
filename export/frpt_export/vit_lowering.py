"""ONNX lowerings of a timm ViT's submodules with explicit precision, swapped into a copy of a VPT model for export.

docs/design.md §4b / §5. PyTorch training and evaluation run timm's own modules (fused attention); the export
runs the same model chain (:meth:`frpt.vpt.model.VPTModel.embed`) on a copy whose ViT parts
:mod:`frpt_export.families.vpt` replaces by these modules, so each dtype change is an explicit Cast in the
traced graph (a strongly typed graph for TensorRT) and attention is plain MatMul + Softmax:

* :class:`ComputeIn` for ``vit.patch_embed.proj``: the patch convolution in ``compute`` between two Casts;
* :class:`ExplicitBlock` for each of ``vit.blocks``: one pre-norm transformer block, float32 ``[N, T, D]`` ->
  float32 ``[N, T, D]``; residual stream and LayerScale in float32; LayerNorm statistics and affine in
  float32 (input cast up), output cast to ``compute``; q/k/v, attention scores and weighting, the output
  projection, the MLP and GELU in ``compute`` (their weights held in that dtype); the softmax in ``softmax``
  (float32 in every export);
* :class:`Float32LayerNorm` for ``vit.norm``: the final norm in float32.

With ``compute = softmax = float32`` the copy equals timm's forward to rounding (tests: max |Δ| ~1e-6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ComputeIn", "ExplicitBlock", "Float32LayerNorm", "check_block"]


def check_block(block: nn.Module) -> None:
    """Refuse a block with parts :class:`ExplicitBlock` does not spell out (a bug, not a user error).

    Raises:
        TypeError: q/k norms, an attention norm or gate, drop paths, or an activation other than GELU.
    """
    attn = block.attn
    plain = (
        attn.q_norm,
        attn.k_norm,
        getattr(attn, "norm", nn.Identity()),
        block.mlp.norm,
        block.drop_path1,
        block.drop_path2,
    )
    if getattr(attn, "gate", None) is not None or not all(isinstance(m, nn.Identity) for m in plain):
        raise TypeError(f"{type(block).__name__} has q/k norms, gates or drop paths the explicit ViT block lacks")
    if not isinstance(block.mlp.act, nn.GELU):
        raise TypeError(f"explicit ViT block expects GELU, got {type(block.mlp.act).__name__}")


def _layer_norm(norm: nn.LayerNorm, x: Tensor) -> Tensor:
    """LayerNorm in float32 (statistics and affine): any ``[..., D]`` -> float32 ``[..., D]``."""
    weight = None if norm.weight is None else norm.weight.float()
    bias = None if norm.bias is None else norm.bias.float()
    return F.layer_norm(x.float(), norm.normalized_shape, weight, bias, norm.eps)


class Float32LayerNorm(nn.Module):
    """A LayerNorm evaluated in float32 whatever its input's dtype: ``[..., D]`` -> float32 ``[..., D]``."""

    def __init__(self, norm: nn.LayerNorm) -> None:
        super().__init__()
        self.norm = norm.float()

    def forward(self, x: Tensor) -> Tensor:
        return _layer_norm(self.norm, x)


class ComputeIn(nn.Module):
    """``module`` run in ``compute`` between Casts: float32 in, float32 out (its weights cast to ``compute``)."""

    def __init__(self, module: nn.Module, compute: torch.dtype) -> None:
        super().__init__()
        self.module = module.to(compute)
        self.compute = compute

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x.to(self.compute)).float()


class ExplicitBlock(nn.Module):
    """A timm ViT block with every precision explicit: float32 ``[N, T, D]`` -> float32 ``[N, T, D]``.

    Args:
        block: the trained timm ``Block`` (checked by :func:`check_block`); its qkv, proj, fc1 and fc2 are cast to
            ``compute`` in place, so pass a copy.
        compute: dtype of the matmuls, attention and GELU.
        softmax: dtype of the attention softmax.
    """

    def __init__(self, block: nn.Module, compute: torch.dtype, softmax: torch.dtype = torch.float32) -> None:
        super().__init__()
        check_block(block)
        for part in (block.attn.qkv, block.attn.proj, block.mlp.fc1, block.mlp.fc2):
            part.to(compute)
        self.block = block
        self.compute = compute
        self.softmax = softmax

    def forward(self, x: Tensor) -> Tensor:
        blk, attn = self.block, self.block.attn
        tokens, width = x.shape[1], x.shape[2]
        h = _layer_norm(blk.norm1, x).to(self.compute)
        qkv = attn.qkv(h).reshape(-1, tokens, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        scores = (q * attn.scale) @ k.transpose(-2, -1)
        weights = scores.to(self.softmax).softmax(dim=-1).to(self.compute)
        h = (weights @ v).transpose(1, 2).reshape(-1, tokens, width)
        x = x + blk.ls1(attn.proj(h).float())
        h = _layer_norm(blk.norm2, x).to(self.compute)
        h = blk.mlp.fc2(blk.mlp.act(blk.mlp.fc1(h)))
        return x + blk.ls2(h.float())
