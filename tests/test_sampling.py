"""DPP structure modification: the separable reference equals the released dense form; grid geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from frpt.dpp import saliency_from_logits
from frpt.sampling import coarse_grid, coarse_grid_dense, inhomogeneous_sample, upsample_grid
from frpt_runtime import sampling_matrices


def _random_saliency(n: int, g: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(n, 1, g, g, generator=gen, dtype=torch.float64)
    return torch.softmax(logits.view(n, -1), dim=1).view(n, 1, g, g)


@pytest.mark.parametrize("g,pad,fwhm", [(31, 30, 13.0), (17, 8, 5.0), (24, 12, 7.5)])
def test_separable_equals_dense(g: int, pad: int, fwhm: float) -> None:
    a = _random_saliency(3, g, seed=g)
    sep, dense = coarse_grid(a, pad, fwhm), coarse_grid_dense(a, pad, fwhm)
    assert sep.shape == (3, g, g, 2)
    assert torch.max(torch.abs(sep - dense)).item() < 1e-6
    # and both differ from the identity grid: the test compares something non-trivial
    assert torch.max(torch.abs(sep - coarse_grid(torch.full_like(a, 1.0 / g**2), pad, fwhm))).item() > 1e-3


def test_matrix_form_equals_reference() -> None:
    g, pad, fwhm = 31, 30, 13.0
    a = _random_saliency(2, g, seed=1)
    m, mc = (torch.from_numpy(x) for x in sampling_matrices.blur_matrices(g, pad, fwhm))
    den, numx, numy = m @ a[:, 0] @ m.T, m @ a[:, 0] @ mc.T, mc @ a[:, 0] @ m.T
    grid = torch.stack((2 * numx / den - 1, 2 * numy / den - 1), dim=-1).clamp(-1, 1)
    assert torch.max(torch.abs(grid - coarse_grid(a, pad, fwhm))).item() < 1e-10


@pytest.mark.parametrize("g,pad,fwhm", [(31, 30, 13.0), (11, 5, 3.0)])
def test_uniform_saliency_gives_regular_grid(g: int, pad: int, fwhm: float) -> None:
    a = torch.full((1, 1, g, g), 1.0 / g**2, dtype=torch.float64)
    grid = coarse_grid(a, pad, fwhm)[0]
    lin = torch.linspace(-1, 1, g, dtype=torch.float64)
    assert torch.max(torch.abs(grid[..., 0] - lin.view(1, g))).item() < 1e-6  # x varies along columns
    assert torch.max(torch.abs(grid[..., 1] - lin.view(g, 1))).item() < 1e-6  # y varies along rows


def test_peak_attracts_coordinates() -> None:
    g = 31
    logits = torch.zeros(1, 1, g, g, dtype=torch.float64)
    peak_i, peak_j = 8, 22  # row (y), column (x)
    logits[0, 0, peak_i, peak_j] = 6.0
    grid = coarse_grid(saliency_from_logits(logits, g).double())[0]
    lin = torch.linspace(-1, 1, g, dtype=torch.float64)
    px, py = lin[peak_j].item(), lin[peak_i].item()
    # every grid point moves (weakly) toward the peak, and the mean distance shrinks clearly
    dist_new = torch.hypot(grid[..., 0] - px, grid[..., 1] - py)
    dist_old = torch.hypot(lin.view(1, g) - px, lin.view(g, 1) - py)
    assert (dist_new <= dist_old + 1e-9).all()
    assert dist_new.mean().item() < 0.95 * dist_old.mean().item()
    # sampling density near the peak rises sharply: > 3x as many grid points within 0.2 of it
    assert (dist_new < 0.2).sum().item() > 3 * (dist_old < 0.2).sum().item()
    # the lattice as a whole shifts toward the peak (right of centre, above centre)
    assert grid[..., 0].mean().item() > 0.005 and grid[..., 1].mean().item() < -0.005


def test_inhomogeneous_sample_shapes_dtypes_and_identity() -> None:
    g = 31
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 48), indexing="ij")
    image = torch.stack((xx, yy, xx * yy))[None].repeat(2, 1, 1, 1)
    uniform = torch.full((2, 1, g, g), 1.0 / g**2)
    out = inhomogeneous_sample(image, uniform, (40, 48))
    assert out.shape == image.shape and out.dtype == image.dtype
    # uniform saliency = regular coarse grid: a smooth image comes back nearly unchanged (< 1/100)
    assert torch.max(torch.abs(out - image)).item() < 0.01
    peaked = torch.zeros(2, 1, g, g)
    peaked[:, :, 5, 5] = 8.0
    warped = inhomogeneous_sample(image, saliency_from_logits(peaked, g), (40, 48))
    assert torch.max(torch.abs(warped - image)).item() > 0.1  # and a peaked map really warps
    half = inhomogeneous_sample(image.half(), uniform, (20, 24))
    assert half.shape == (2, 3, 20, 24) and half.dtype == torch.float16


def test_upsample_grid_corners() -> None:
    grid = coarse_grid(torch.full((1, 1, 5, 5), 1 / 25.0, dtype=torch.float64), 4, 3.0)
    up = upsample_grid(grid, (9, 13))
    assert up.shape == (1, 9, 13, 2)
    assert up[0, 0, 0].tolist() == pytest.approx([-1.0, -1.0]) and up[0, -1, -1].tolist() == pytest.approx([1.0, 1.0])


def test_saliency_from_logits_is_softmax() -> None:
    logits = torch.randn(2, 1, 7, 9)
    a = saliency_from_logits(logits, 31)
    assert a.shape == (2, 1, 31, 31) and a.dtype == torch.float32
    assert torch.allclose(a.sum(dim=(1, 2, 3)), torch.ones(2), atol=1e-5)
    # align_corners=True: the corner cells keep the corner logits' ordering
    big = torch.zeros(1, 1, 4, 4)
    big[0, 0, 0, 0] = 5.0
    assert saliency_from_logits(big, 31)[0, 0].argmax().item() == 0


def test_reference_sampler_keeps_float32_grid_under_autocast() -> None:
    from frpt.dpp import ReferenceSampler

    torch.manual_seed(0)
    image = torch.rand(2, 3, 24, 24)
    saliency = saliency_from_logits(torch.randn(2, 1, 6, 6), 31)
    sampler = ReferenceSampler(30, 13.0)
    plain = sampler(image, saliency)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = sampler(image, saliency)
    assert mixed.dtype == torch.float32 and torch.equal(mixed, plain)
    assert torch.equal(plain, inhomogeneous_sample(image, saliency, (24, 24)))


def _smooth_image(n: int, c: int, hw: tuple[int, int], seed: int) -> np.ndarray:
    """Random images smooth at the pixel scale (bilinear upsampling of a 9x9 lattice), float32 in [0, 1]."""
    coarse = torch.rand(n, c, 9, 9, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse, size=hw, mode="bilinear", align_corners=True).numpy()


@pytest.mark.parametrize(
    "g,pad,fwhm,hw,out_hw",
    [(31, 30, 13.0, (64, 64), (64, 64)), (17, 8, 5.5, (97, 131), (64, 48)), (2, 0, 1.0, (5, 7), (3, 9))],
)
def test_numpy_op_equals_reference(g: int, pad: int, fwhm: float, hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
    """The numpy matrix form ONNX Runtime runs for the plugin node: grid and output vs the PyTorch reference (fp32)."""
    sal = _random_saliency(2, g, seed=g).float()
    image = _smooth_image(2, 3, hw, seed=g)
    grid = sampling_matrices.sampling_grid(sal.numpy(), pad, fwhm, out_hw)
    ref_grid = upsample_grid(coarse_grid(sal, pad, fwhm), out_hw).numpy()
    assert grid.dtype == np.float32 and grid.shape == ref_grid.shape
    assert np.abs(grid - ref_grid).max() < 2e-6
    out = sampling_matrices.inhomogeneous_sample(image, sal.numpy(), out_hw, pad, fwhm)
    ref = inhomogeneous_sample(torch.from_numpy(image), sal, out_hw, pad, fwhm).numpy()
    assert out.dtype == np.float32 and out.shape == ref.shape
    assert np.abs(out - ref).max() < 1e-5
    if pad > 0:  # with pad 0 every map gives the identity grid; otherwise the saliency moves the samples
        identity = sampling_matrices.inhomogeneous_sample(image, np.full_like(sal.numpy(), 1 / g**2), out_hw, pad, fwhm)
        assert np.abs(out - identity).max() > 1e-3


def test_numpy_grid_sample_skips_outside_corners() -> None:
    """Zeros padding: a corner outside the image contributes nothing, even where the image holds NaN nearby."""
    image = np.ones((1, 1, 4, 4), np.float32)
    image[0, 0, 0, 0] = np.nan
    grid = np.array([[[[1.0, 1.0], [1.0, -1.0 / 3.0]]]], np.float32)  # bottom-right corner; right edge inside
    out = sampling_matrices.grid_sample_bilinear(image, grid)
    np.testing.assert_array_equal(out, np.ones((1, 1, 1, 2), np.float32))


@pytest.mark.parametrize("kind", ["zeros", "nan", "inf"])
def test_numpy_op_non_finite_saliency_gives_nan_like_the_reference(kind: str) -> None:
    value = {"zeros": 0.0, "nan": float("nan"), "inf": float("inf")}[kind]
    sal = np.full((1, 1, 31, 31), 1.0 / 31**2, np.float32)
    sal[0, 0, 10, 10] = value
    if kind == "zeros":
        sal[:] = 0.0
    image = _smooth_image(1, 3, (32, 32), seed=0)
    ref = inhomogeneous_sample(torch.from_numpy(image), torch.from_numpy(sal), (32, 32), 30, 13.0).numpy()
    with np.errstate(all="raise"):  # the op keeps numpy's warnings to itself
        out = sampling_matrices.inhomogeneous_sample(image, sal, (32, 32), 30, 13.0)
    assert np.isnan(ref).any() and np.isnan(out[np.isnan(ref)]).all()  # NaN wherever the reference has NaN
