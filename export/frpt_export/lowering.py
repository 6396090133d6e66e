"""ONNX lowerings of FRPT's fixed-size DPP steps (swapped into the model only for export).

DESIGN.md §3: the standard lowering expresses every fixed-size linear step as a MatMul with a constant
matrix (exact, and identical on ONNX Runtime and TensorRT, unlike bilinear ``Resize`` — NVIDIA/TensorRT#273),
then one ``GridSample`` (opset >= 16; opset 17 because opset 20 renamed its mode, NVIDIA/TensorRT#4646).
The plugin lowering replaces the whole structure modification by one ``frpt::InhomogeneousSample`` node.

Modules here, all computing in float32 whatever the caller's precision:

* :class:`SaliencyResize`: tap logits ``[N, 1, h, w]`` -> softmax saliency ``[N, 1, g, g]`` (= ``frpt.dpp.
  saliency_from_logits``: bilinear align_corners=True resize + softmax over the ``g^2`` cells);
* :class:`MatMulSampler`: ``(image [N, C, H, W], saliency [N, 1, g, g]) -> [N, C, H, W]`` as MatMuls + GridSample;
* :class:`PluginSampler`: the same signature, exported as the custom node (its eager forward is the reference);
* :class:`InstanceNormCAH`: CAH with its parameter-free InstanceNorm as one ``InstanceNormalization`` node
  (the model writes the statistics out by hand, which would export as a ReduceMean/Sub/Mul chain).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from frpt.cah import CAH, IN_EPS
from frpt.sampling import bilinear_resize_matrix, blur_matrices, inhomogeneous_sample
from frpt_export.onnx_meta import PLUGIN_DOMAIN
from frpt_runtime.backends.base import LOWERINGS

__all__ = [
    "LOWERINGS",
    "PLUGIN_DOMAIN",
    "PLUGIN_OP",
    "SaliencyResize",
    "MatMulSampler",
    "PluginSampler",
    "InstanceNormCAH",
    "make_sampler",
]

PLUGIN_OP = "InhomogeneousSample"
PLUGIN_VERSION = "1"


class SaliencyResize(nn.Module):
    """Saliency logits to a softmax-normalised ``g x g`` map with constant MatMuls.

    Args:
        in_hw: the tap's spatial size ``(h, w)`` (fixed by the model's input size).
        grid: ``g``.

    Shapes: ``[N, 1, h, w]`` float -> ``[N, 1, g, g]`` float32.
    """

    def __init__(self, in_hw: tuple[int, int], grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.register_buffer("rh", bilinear_resize_matrix(in_hw[0], grid, True, torch.float32), persistent=False)
        self.register_buffer("rwt", bilinear_resize_matrix(in_hw[1], grid, True, torch.float32).T.contiguous(),
                             persistent=False)

    def forward(self, logits: Tensor) -> Tensor:
        resized = self.rh @ logits.float() @ self.rwt  # [N, 1, g, g]
        flat = torch.softmax(resized.flatten(1), dim=1)
        return flat.view(-1, 1, self.grid, self.grid)


class MatMulSampler(nn.Module):
    """Standard lowering of :func:`frpt.sampling.inhomogeneous_sample` (float32 throughout).

    ``den = M A M^T``, ``numx = M A Mc^T``, ``numy = Mc A M^T`` (padding, coordinates and the separable
    Gaussian folded into ``M``, ``Mc``). ``2 numx/den - 1`` is computed as ``M A D^T / den`` with the
    constant ``D = 2 Mc - M`` (formed in float64), which avoids the float32 cancellation of the ``- 1``.
    The clamped ``g x g`` grid is upsampled by ``R_h G R_w^T`` (align_corners=False), then
    ``GridSample(bilinear, zeros, align_corners=True)``.

    Args:
        grid, pad, fwhm: DPP geometry (``g``, ``p``, FWHM).
        out_hw: output ``(H, W)`` (the model's input size).

    Shapes: ``image [N, C, H, W]`` float, ``saliency [N, 1, g, g]`` float32 -> ``[N, C, H, W]`` float32.
    """

    def __init__(self, grid: int, pad: int, fwhm: float, out_hw: tuple[int, int]) -> None:
        super().__init__()
        m, mc = blur_matrices(grid, pad, fwhm, torch.float64)
        d = 2.0 * mc - m
        self.register_buffer("m", m.float(), persistent=False)
        self.register_buffer("mt", m.T.float().contiguous(), persistent=False)
        self.register_buffer("d", d.float(), persistent=False)
        self.register_buffer("dt", d.T.float().contiguous(), persistent=False)
        self.register_buffer("uh", bilinear_resize_matrix(grid, out_hw[0], False, torch.float32), persistent=False)
        self.register_buffer("uwt", bilinear_resize_matrix(grid, out_hw[1], False, torch.float32).T.contiguous(),
                             persistent=False)

    def grid(self, saliency: Tensor) -> Tensor:
        """``[N, 1, g, g]`` saliency -> ``[N, H, W, 2]`` float32 sampling grid ``(x, y)`` in ``[-1, 1]``."""
        a = saliency.float()[:, 0]  # [N, g, g]
        ma = self.m @ a
        den = ma @ self.mt
        gx = torch.clamp((ma @ self.dt) / den, -1.0, 1.0)
        gy = torch.clamp((self.d @ a @ self.mt) / den, -1.0, 1.0)
        return torch.stack((self.uh @ gx @ self.uwt, self.uh @ gy @ self.uwt), dim=-1)

    def forward(self, image: Tensor, saliency: Tensor) -> Tensor:
        grid = self.grid(saliency)
        return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)


class _InhomogeneousSample(torch.autograd.Function):
    """Eager: the reference function. Export: one ``frpt::InhomogeneousSample`` node (DESIGN.md §3)."""

    @staticmethod
    def forward(ctx, image: Tensor, saliency: Tensor, out_h: int, out_w: int, pad: int, fwhm: float) -> Tensor:
        return inhomogeneous_sample(image, saliency, (out_h, out_w), pad, fwhm)

    @staticmethod
    def symbolic(g, image, saliency, out_h: int, out_w: int, pad: int, fwhm: float):
        out = g.op(
            f"{PLUGIN_DOMAIN}::{PLUGIN_OP}",
            image,
            saliency,
            out_h_i=out_h,
            out_w_i=out_w,
            pad_i=pad,
            fwhm_f=fwhm,
            align_corners_i=1,
            plugin_version_s=PLUGIN_VERSION,
            plugin_namespace_s=PLUGIN_DOMAIN,
        )
        sizes = image.type().varyingSizes()
        channels = sizes[1] if sizes else None
        out.setType(image.type().with_sizes([None, channels, out_h, out_w]))
        return out


class PluginSampler(nn.Module):
    """Plugin lowering: exported as the single custom node; eager forward = the reference function.

    Shapes: ``image [N, C, H, W]`` float, ``saliency [N, 1, g, g]`` float32 -> ``[N, C, out_h, out_w]``
    with the image's dtype.
    """

    def __init__(self, pad: int, fwhm: float, out_hw: tuple[int, int]) -> None:
        super().__init__()
        self.pad, self.fwhm, self.out_hw = int(pad), float(fwhm), (int(out_hw[0]), int(out_hw[1]))

    def forward(self, image: Tensor, saliency: Tensor) -> Tensor:
        return _InhomogeneousSample.apply(image, saliency.float(), *self.out_hw, self.pad, self.fwhm)


class InstanceNormCAH(nn.Module):
    """``F' = w F + (1 - w) IN(F)`` of a trained :class:`~frpt.cah.CAH`, IN as ``F.instance_norm`` (float32).

    Shapes: ``[N, C, h, w]`` float -> float32 ``[N, C, h, w]``.
    """

    def __init__(self, cah: CAH) -> None:
        super().__init__()
        self.cah = cah

    def forward(self, features: Tensor) -> Tensor:
        features = features.float()
        w = self.cah.weights(features)
        return w * features + (1.0 - w) * F.instance_norm(features, eps=IN_EPS)


def make_sampler(lowering: str, grid: int, pad: int, fwhm: float, out_hw: tuple[int, int]) -> nn.Module:
    """The sampler module for ``lowering`` (``standard`` | ``plugin``)."""
    if lowering == "standard":
        return MatMulSampler(grid, pad, fwhm, out_hw)
    if lowering == "plugin":
        return PluginSampler(pad, fwhm, out_hw)
    raise ValueError(f"lowering must be one of {LOWERINGS}, got {lowering!r}")
