"""DPP's fixed-size linear steps as constant matrices, and the inhomogeneous sampling op on them (numpy only).

The numeric reference of the op is :func:`frpt.sampling.inhomogeneous_sample` (PyTorch); this module holds its
*matrix form*, in float64, for the two lowerings that need constants without torch:

* the standard ONNX lowering (:mod:`frpt_export.lowering`) stores these matrices as MatMul initialisers;
* ONNX Runtime runs a plugin-lowered graph's ``frpt::InhomogeneousSample`` node with :func:`inhomogeneous_sample`
  (registered by :mod:`frpt_runtime.custom_ops`), so a box without torch can prove such a graph too.

With ``C`` the valid-correlation Toeplitz matrix of the Gaussian ``k(d) = exp(-4 ln2 d^2 / fwhm^2)``
(``[g, g + 2p]``) and ``R`` the replication-padding matrix (``[g + 2p, g]``): ``M = C R`` and
``Mc = C diag(Px) R`` with the padded-lattice coordinates ``Px(j) = (j - p) / (g - 1)``. For one saliency map
``A`` ``[g, g]``: ``den = M A M^T``, ``numx = M A Mc^T``, ``numy = Mc A M^T``, and the grid
``gx = clamp(2 numx / den - 1, -1, 1)`` is ``clamp(M A D^T / den)`` with ``D = 2 Mc - M`` (no float32
cancellation of the ``- 1``); ``gy = clamp(D A M^T / den)``. Bilinear resizes along one axis are
``R @ v`` with :func:`bilinear_resize_matrix` (PyTorch's ``F.interpolate`` rule).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "bilinear_resize_matrix",
    "blur_matrices",
    "gaussian_taps",
    "grid_sample_bilinear",
    "inhomogeneous_sample",
    "padded_coordinates",
    "sampling_grid",
]


def gaussian_taps(pad: int, fwhm: float) -> np.ndarray:
    """``k(d) = exp(-4 ln2 d^2 / fwhm^2)`` for ``d = -pad..pad``: float64 ``[2 pad + 1]`` (unnormalised)."""
    d = np.arange(-pad, pad + 1, dtype=np.float64)
    return np.exp(-4.0 * math.log(2.0) * d * d / (fwhm * fwhm))


def padded_coordinates(g: int, pad: int) -> np.ndarray:
    """Padded-grid coordinates ``(j - pad) / (g - 1)`` for ``j = 0..g + 2 pad - 1``: float64 ``[g + 2 pad]``."""
    j = np.arange(g + 2 * pad, dtype=np.float64)
    return (j - pad) / (g - 1)


def bilinear_resize_matrix(in_size: int, out_size: int, align_corners: bool) -> np.ndarray:
    """Matrix ``R`` (float64 ``[out_size, in_size]``) with ``R @ v`` = PyTorch's 1-D bilinear resize of ``v``.

    Matches ``F.interpolate(mode="bilinear")`` along one axis (half-pixel centres, edge clamp when
    ``align_corners`` is False), so a 2-D resize is ``R_h @ X @ R_w.T``.
    """
    r = np.zeros((out_size, in_size), dtype=np.float64)
    for o in range(out_size):
        if align_corners:
            src = o * (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        else:
            src = max((o + 0.5) * in_size / out_size - 0.5, 0.0)
        i0 = min(math.floor(src), in_size - 1)
        i1 = min(i0 + 1, in_size - 1)
        w1 = src - i0
        r[o, i0] += 1.0 - w1
        r[o, i1] += w1
    return r


def blur_matrices(g: int, pad: int, fwhm: float) -> tuple[np.ndarray, np.ndarray]:
    """``(M, Mc)``, both float64 ``[g, g]``: padding, coordinate weighting and the 1-D Gaussian folded together."""
    n = g + 2 * pad
    k = gaussian_taps(pad, fwhm)
    c = np.zeros((g, n), dtype=np.float64)
    for i in range(g):
        c[i, i : i + 2 * pad + 1] = k
    rep = np.zeros((n, g), dtype=np.float64)
    rep[np.arange(n), np.clip(np.arange(n) - pad, 0, g - 1)] = 1.0
    coords = padded_coordinates(g, pad)
    return c @ rep, c @ np.diag(coords) @ rep


def sampling_grid(saliency: np.ndarray, pad: int, fwhm: float, out_hw: tuple[int, int]) -> np.ndarray:
    """Saliency float32 ``[N, 1, g, g]`` -> sampling grid float32 ``[N, out_h, out_w, 2]`` ``(x, y)`` in [-1, 1].

    The coarse ``g x g`` grid in the matrix form above, upsampled bilinearly (align_corners=False); float32
    arithmetic on float32 constants, as the standard ONNX lowering computes it. A non-finite saliency (NaN, Inf, or
    all zeros: 0/0) gives NaN grid points; the upsampling MatMul spreads one NaN cell over the whole grid, where the
    reference's interpolation keeps it local — either way the output is NaN, never silently finite.
    """
    g = saliency.shape[-1]
    m, mc = blur_matrices(g, pad, fwhm)
    m32, d32 = m.astype(np.float32), (2.0 * mc - m).astype(np.float32)
    uh = bilinear_resize_matrix(g, out_hw[0], False).astype(np.float32)
    uw = bilinear_resize_matrix(g, out_hw[1], False).astype(np.float32)
    a = saliency.astype(np.float32)[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 and inf/inf give NaN, as in the reference
        ma = m32 @ a
        den = ma @ m32.T
        gx = np.clip((ma @ d32.T) / den, -1.0, 1.0)
        gy = np.clip((d32 @ a @ m32.T) / den, -1.0, 1.0)
    return np.stack((uh @ gx @ uw.T, uh @ gy @ uw.T), axis=-1).astype(np.float32)


def grid_sample_bilinear(image: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``grid_sample(image, grid, bilinear, zeros padding, align_corners=True)`` in numpy.

    Args:
        image: float32 ``[N, C, H, W]``.
        grid: float32 ``[N, h, w, 2]`` ``(x, y)`` in [-1, 1].

    Returns:
        float32 ``[N, C, h, w]``; corners outside the image contribute nothing (zeros padding); a non-finite grid
        point gives NaN in every channel, as PyTorch's ``grid_sample`` does.
    """
    n, c, h, w = image.shape
    bad = ~np.isfinite(grid).all(axis=-1)  # [N, h, w]
    grid = np.where(bad[..., None], 0.0, grid)
    ix = (grid[..., 0] + 1.0) / 2.0 * (w - 1)
    iy = (grid[..., 1] + 1.0) / 2.0 * (h - 1)
    x0, y0 = np.floor(ix), np.floor(iy)
    ex, ey = ix - x0, iy - y0
    out = np.zeros((n, c, *grid.shape[1:3]), dtype=np.float32)
    batch = np.arange(n)[:, None, None]
    for dy, dx, weight in ((0, 0, (1 - ex) * (1 - ey)), (0, 1, ex * (1 - ey)), (1, 0, (1 - ex) * ey), (1, 1, ex * ey)):
        cx, cy = (x0 + dx).astype(np.int64), (y0 + dy).astype(np.int64)
        inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
        values = image[batch, :, np.clip(cy, 0, h - 1), np.clip(cx, 0, w - 1)]  # [N, h, w, C]
        contribution = np.where(inside[..., None], values * weight[..., None], 0.0)  # no NaN from skipped corners
        out += np.moveaxis(contribution, -1, 1).astype(np.float32)
    out[np.broadcast_to(bad[:, None], out.shape)] = np.nan
    return out


def inhomogeneous_sample(
    image: np.ndarray, saliency: np.ndarray, out_hw: tuple[int, int], pad: int, fwhm: float
) -> np.ndarray:
    """DPP structure modification in numpy: image float32 ``[N, C, H, W]`` + saliency float32 ``[N, 1, g, g]`` ->
    float32 ``[N, C, out_h, out_w]`` (the plugin op's semantics, docs/design.md §4)."""
    return grid_sample_bilinear(image.astype(np.float32), sampling_grid(saliency, pad, fwhm, out_hw))
