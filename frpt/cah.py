"""CAH, the category-specific awareness head, and the embedding head (docs/design.md §4).

Provenance: FRPT (Wang et al., AAAI 2023), §3.3, Eq. (6)-(7); released code ``MAM`` block.

* :class:`CAH`: ``w = sigmoid(W2 relu(W1 GAP(F)))`` (SE form, reduction ``r``),
  ``F' = w * F + (1 - w) * IN(F)`` with parameter-free InstanceNorm (eps 1e-5). Shapes preserved. The
  InstanceNorm is the submodule ``norm`` (:class:`InstanceNorm`), so the exporter can swap in one ONNX node.
* :class:`EmbeddingHead`: global pooling of ``F'`` -- average (paper, default) or GeM followed by a
  BatchNorm neck (released code) -- optionally through a linear projection ``C -> D``, to an
  *unnormalised* embedding ``[N, D]`` (``D = C`` without projection).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from frpt_runtime.families.frpt import POOLINGS

__all__ = ["CAH", "IN_EPS", "EmbeddingHead", "GeM", "InstanceNorm", "instance_norm"]

IN_EPS = 1e-5


def instance_norm(x: Tensor, eps: float = IN_EPS) -> Tensor:
    """Parameter-free InstanceNorm ``(x - mean) / sqrt(var + eps)`` per sample and channel.

    Statistics (biased variance, as ONNX ``InstanceNormalization``) are taken in float32 whatever the input
    dtype; a ``1 x 1`` map normalises to zeros (``F.instance_norm`` refuses it in training mode).

    Args:
        x: ``[N, C, h, w]`` float.

    Returns:
        Same shape and dtype as ``x``.
    """
    xf = x.float()
    mean = xf.mean(dim=(2, 3), keepdim=True)
    var = (xf - mean).square().mean(dim=(2, 3), keepdim=True)
    return ((xf - mean) * torch.rsqrt(var + eps)).to(x.dtype)


class InstanceNorm(nn.Module):
    """:func:`instance_norm` as a module (no parameters): ``[N, C, h, w]`` -> same shape and dtype."""

    def __init__(self, eps: float = IN_EPS) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return instance_norm(x, self.eps)


class CAH(nn.Module):
    """Category-specific awareness head.

    Args:
        channels: feature channels ``C``.
        reduction: SE reduction ratio ``r`` (hidden width ``max(1, C // r)``).
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"CAH reduction must be >= 1, got {reduction}")
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.norm: nn.Module = InstanceNorm()

    def weights(self, features: Tensor) -> Tensor:
        """SE weights ``w``: ``[N, C, h, w]`` -> ``[N, C, 1, 1]`` in (0, 1)."""
        pooled = features.mean(dim=(2, 3))
        return torch.sigmoid(self.fc2(F.relu(self.fc1(pooled))))[:, :, None, None]

    def forward(self, features: Tensor) -> Tensor:
        """``F [N, C, h, w]`` -> ``F' [N, C, h, w]`` (same dtype)."""
        w = self.weights(features)
        return w * features + (1.0 - w) * self.norm(features)


class GeM(nn.Module):
    """Generalised-mean pooling with a trainable exponent: ``[N, C, h, w]`` -> ``[N, C]``."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)


class EmbeddingHead(nn.Module):
    """Pooling, optional linear projection, and (for GeM) a BN neck: the unnormalised embedding.

    Args:
        channels: feature channels ``C``.
        pooling: ``avg`` or ``gem``.
        gem_p: initial GeM exponent.
        embedding_dim: projection width ``D``; 0 keeps ``D = C`` (no projection).
    """

    def __init__(self, channels: int, pooling: str = "avg", gem_p: float = 3.0, embedding_dim: int = 0) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.embedding_dim = embedding_dim or channels
        self.gem = GeM(gem_p) if pooling == "gem" else None
        self.proj = nn.Linear(channels, embedding_dim) if embedding_dim else None
        self.neck = nn.BatchNorm1d(self.embedding_dim) if pooling == "gem" else None
        if self.neck is not None:
            self.neck.bias.requires_grad_(False)  # BN neck without shift, as in the released code

    def forward(self, features: Tensor) -> Tensor:
        """``[N, C, h, w]`` -> ``[N, D]`` float (unnormalised)."""
        pooled = features.mean(dim=(2, 3)) if self.gem is None else self.gem(features)
        if self.proj is not None:
            pooled = self.proj(pooled)
        return pooled if self.neck is None else self.neck(pooled)
