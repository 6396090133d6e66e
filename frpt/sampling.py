"""DPP structure modification: saliency-driven inhomogeneous sampling (the op the plugin owns).

Provenance: FRPT (Wang et al., AAAI 2023), "structure modification" of the discriminative perturbation
prompt; the released code follows the saliency sampler of Recasens et al. (ECCV 2018). Semantics are fixed
in docs/design.md §4:

* ``A`` (``[N, 1, g, g]``, softmax-normalised) is replication-padded by ``pad`` cells on each side;
* a fixed Gaussian ``k(d) = exp(-4 ln2 d^2 / fwhm^2)`` over offsets ``d in [-pad, pad]``, applied as two
  separable 1-D valid correlations, gives ``den = K*A_pad``, ``numx = K*(Px A_pad)``, ``numy = K*(Py A_pad)``;
* ``gx = clamp(2 numx/den - 1, -1, 1)`` (x = column), ``gy`` likewise, on the ``g x g`` grid;
* the grid is upsampled bilinearly (align_corners=False) to the output size and the image is resampled
  with ``grid_sample(bilinear, zeros, align_corners=True)``.

:func:`inhomogeneous_sample` is the numeric reference for every lowering (ONNX MatMul form, CUDA kernel,
TensorRT plugin, the numpy op ONNX Runtime runs). :func:`coarse_grid_dense` is the released code's dense 61x61
formulation, kept only so tests can prove the separable form equal to it. The Gaussian taps and lattice
coordinates come from :mod:`frpt_runtime.sampling_matrices`, which also holds the matrix form of the
fixed-size linear steps used by the standard ONNX lowering.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from frpt_runtime import sampling_matrices

__all__ = [
    "coarse_grid",
    "coarse_grid_dense",
    "gaussian_kernel_1d",
    "inhomogeneous_sample",
    "padded_coordinates",
    "upsample_grid",
]


def gaussian_kernel_1d(pad: int, fwhm: float, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """1-D Gaussian ``k(d) = exp(-4 ln2 d^2 / fwhm^2)`` for ``d = -pad..pad``.

    Returns:
        ``[2*pad+1]`` tensor (unnormalised; the ratio numx/den cancels any scale).
    """
    return torch.from_numpy(sampling_matrices.gaussian_taps(int(pad), float(fwhm))).to(device=device, dtype=dtype)


def padded_coordinates(g: int, pad: int, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """Padded-grid coordinates ``(j - pad) / (g - 1)`` for ``j = 0..g+2*pad-1``: ``[g + 2*pad]``."""
    return torch.from_numpy(sampling_matrices.padded_coordinates(int(g), int(pad))).to(device=device, dtype=dtype)


def _check_saliency(saliency: Tensor) -> int:
    if saliency.dim() != 4 or saliency.shape[1] != 1 or saliency.shape[2] != saliency.shape[3]:
        raise ValueError(f"saliency must be [N, 1, g, g], got {tuple(saliency.shape)}")
    g = saliency.shape[-1]
    if g < 2:
        raise ValueError(f"grid size g must be >= 2, got {g}")
    return g


def _normalised_grid(den: Tensor, numx: Tensor, numy: Tensor) -> Tensor:
    gx = torch.clamp(2.0 * numx / den - 1.0, -1.0, 1.0)
    gy = torch.clamp(2.0 * numy / den - 1.0, -1.0, 1.0)
    return torch.stack((gx[:, 0], gy[:, 0]), dim=-1)


def coarse_grid(saliency: Tensor, pad: int = 30, fwhm: float = 13.0) -> Tensor:
    """Sampling grid on the coarse ``g x g`` lattice, separable Gaussian (two 1-D passes).

    Args:
        saliency: ``[N, 1, g, g]`` float tensor, each map summing to 1.
        pad: replication padding in cells on each side (kernel support ``2*pad+1``).
        fwhm: Gaussian full width at half maximum, in cells.

    Returns:
        ``[N, g, g, 2]`` grid ``(x, y)`` in ``[-1, 1]`` with the saliency's dtype.
    """
    g = _check_saliency(saliency)
    dtype, device = saliency.dtype, saliency.device
    a_pad = F.pad(saliency, (pad, pad, pad, pad), mode="replicate")
    k = gaussian_kernel_1d(pad, fwhm, dtype, device)
    coords = padded_coordinates(g, pad, dtype, device)
    kx, ky = k.view(1, 1, 1, -1), k.view(1, 1, -1, 1)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(t, kx), ky)

    return _normalised_grid(blur(a_pad), blur(a_pad * coords.view(1, 1, 1, -1)), blur(a_pad * coords.view(1, 1, -1, 1)))


def coarse_grid_dense(saliency: Tensor, pad: int = 30, fwhm: float = 13.0) -> Tensor:
    """The released code's formulation: one dense ``(2p+1) x (2p+1)`` correlation. Test oracle only.

    Same arguments and result as :func:`coarse_grid`.
    """
    g = _check_saliency(saliency)
    dtype, device = saliency.dtype, saliency.device
    a_pad = F.pad(saliency, (pad, pad, pad, pad), mode="replicate")
    k = gaussian_kernel_1d(pad, fwhm, dtype, device)
    kernel = torch.outer(k, k).view(1, 1, 2 * pad + 1, 2 * pad + 1)
    coords = padded_coordinates(g, pad, dtype, device)
    px = coords.view(1, 1, 1, -1).expand_as(a_pad)
    py = coords.view(1, 1, -1, 1).expand_as(a_pad)
    stacked = torch.cat((a_pad, px * a_pad, py * a_pad), dim=1)  # [N, 3, G, G]
    out = F.conv2d(stacked.reshape(-1, 1, *a_pad.shape[-2:]), kernel).view(saliency.shape[0], 3, 1, g, g)
    return _normalised_grid(out[:, 0], out[:, 1], out[:, 2])


def upsample_grid(grid: Tensor, out_hw: tuple[int, int]) -> Tensor:
    """Bilinear (align_corners=False) upsampling of a ``[N, g, g, 2]`` grid to ``[N, H, W, 2]``."""
    up = F.interpolate(grid.permute(0, 3, 1, 2), size=tuple(out_hw), mode="bilinear", align_corners=False)
    return up.permute(0, 2, 3, 1)


def inhomogeneous_sample(
    image: Tensor, saliency: Tensor, out_hw: tuple[int, int], pad: int = 30, fwhm: float = 13.0
) -> Tensor:
    """Reference DPP structure modification.

    Args:
        image: ``[N, C, H, W]`` float tensor (any float dtype; the grid is computed in the saliency's dtype).
        saliency: ``[N, 1, g, g]`` softmax-normalised saliency (float32 or float64).
        out_hw: output ``(out_h, out_w)``.
        pad: replication padding in cells.
        fwhm: Gaussian FWHM in cells.

    Returns:
        ``[N, C, out_h, out_w]`` resampled image, same dtype as ``image``.
    """
    if image.dim() != 4 or image.shape[0] != saliency.shape[0]:
        raise ValueError(f"image must be [N, C, H, W] with N = saliency N, got {tuple(image.shape)}")
    grid = upsample_grid(coarse_grid(saliency, pad, fwhm), out_hw)
    sampled = F.grid_sample(image.to(grid.dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return sampled.to(image.dtype)
