"""NaN / Inf semantics of the kernels = those of the reference ``frpt.sampling.inhomogeneous_sample`` (run on CPU).

What the reference does, pinned here first so a PyTorch change shows:

* the grid is ``torch.clamp(2 numx / den - 1, -1, 1)``, and clamp keeps NaN: NaN or Inf saliency in a cell's window,
  an all-zero map, or ``den = 0`` from softmax underflow (reachable when g > 2 pad + 1) give NaN grid points, hence
  NaN output pixels (all channels) wherever the upsampled grid is NaN; never a silently constant image;
* ``grid_sample`` (zeros padding) never reads a corner outside the image, but reads every corner inside it, even at
  weight 0: a NaN pixel poisons only outputs whose footprint covers it. (A kernel that reads plane[0] for outside
  corners with weight 0 leaks a non-finite pixel (0, 0) into the right and bottom edges.)

The host build of the kernel math (fp32) and the real kernels on the CPU emulation (fp32 and fp16) must give the same
NaN and Inf positions as the reference and agree elsewhere within the usual thresholds.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import sampler_testkit as kit
import torch

from frpt.sampling import inhomogeneous_sample

FP32_TOL = 1e-5
FP16_TOL = 2e-3


def _uniform(n: int, g: int) -> np.ndarray:
    return np.full((n, 1, g, g), 1.0 / (g * g), np.float32)


def _with(values: np.ndarray, index: tuple, value: float) -> np.ndarray:
    out = values.copy()
    out[index] = value
    return out


def _underflow(g: int) -> np.ndarray:
    """Softmax of one logit 0 among -200s: all mass in one cell, exactly 0 in float32 elsewhere."""
    logits = np.full((1, g * g), -200.0)
    logits[0, 3 * g + 3] = 0.0
    e = np.exp(logits - logits.max())
    return (e / e.sum()).astype(np.float32).reshape(1, 1, g, g)


_RNG = np.random.default_rng(5)
_IMAGE = kit.smooth_images(1, 2, (20, 24), _RNG)
_IMAGE_G63 = kit.smooth_images(2, 2, (20, 24), _RNG)

# name -> (image, saliency, out_hw, pad, fwhm, what the reference gives). The pixel cases upsample g = 31 to more than
# 31 columns / rows, so the last ones sit exactly on gx = 1 / gy = 1, whose right / lower corners are outside the image.
CASES = {
    "nan_saliency": (_IMAGE, np.full((1, 1, 31, 31), np.nan, np.float32), (16, 18), 30, 13.0, "all NaN"),
    "zero_saliency": (_IMAGE, np.zeros((1, 1, 31, 31), np.float32), (16, 18), 30, 13.0, "all NaN"),
    "inf_cell": (_IMAGE, _with(_uniform(1, 31), (0, 0, 5, 7), np.inf), (16, 18), 30, 13.0, "all NaN"),
    "nan_cell_g63": (_IMAGE_G63, _with(_uniform(2, 63), (1, 0, 5, 7), np.nan), (50, 70), 30, 13.0, "some NaN"),
    "softmax_underflow": (_IMAGE, _underflow(31), (16, 18), 2, 1.0, "some NaN"),
    "nan_pixel_00": (_with(_IMAGE, (0, 1, 0, 0), np.nan), _uniform(1, 31), (40, 44), 30, 13.0, "some NaN"),
    "inf_pixel_00": (_with(_IMAGE, (0, 0, 0, 0), np.inf), _uniform(1, 31), (40, 44), 30, 13.0, "Inf, no NaN"),
}


def _reference(name: str, image: np.ndarray | None = None) -> np.ndarray:
    img, sal, out_hw, pad, fwhm, _ = CASES[name]
    img = img if image is None else image
    return inhomogeneous_sample(torch.from_numpy(img), torch.from_numpy(sal), out_hw, pad, fwhm).numpy()


def assert_same_nonfinite(got: np.ndarray, ref: np.ndarray, tol: float) -> None:
    """NaN, +Inf and -Inf at the same places; finite values within ``tol``."""
    got = got.astype(np.float32)
    for what, mask in (("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf)):
        g, r = mask(got), mask(ref)
        assert (g == r).all(), f"{what} at {int((g & ~r).sum())} extra and {int((r & ~g).sum())} missing places"
    finite = np.isfinite(ref)
    if finite.any():
        assert np.abs(got[finite] - ref[finite]).max() <= tol


@pytest.mark.parametrize("name", CASES)
def test_reference_semantics(name: str) -> None:
    ref = _reference(name)
    expected = CASES[name][-1]
    if expected == "all NaN":
        assert np.isnan(ref).all()
    elif expected == "some NaN":
        assert np.isnan(ref).any() and not np.isnan(ref).all() and not np.isinf(ref).any()
    else:
        assert np.isinf(ref).any() and not np.isnan(ref).any()
    if name in ("nan_pixel_00", "inf_pixel_00"):  # only outputs whose footprint covers pixel (0, 0)
        bad = ~np.isfinite(ref)
        assert bad[..., :4, :4].any() and not bad[..., 4:, :].any() and not bad[..., :, 4:].any()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> kit.HostSampler:
    try:
        return kit.HostSampler(kit.shared_build(kit.build_host_library, tmp_path_factory))
    except RuntimeError as e:
        pytest.skip(str(e))
    except subprocess.CalledProcessError as e:
        pytest.fail(f"host math library failed to compile:\n{e.stderr}")


@pytest.fixture(scope="module")
def emulated(tmp_path_factory: pytest.TempPathFactory) -> kit.EmulatedKernels:
    try:
        return kit.EmulatedKernels(kit.shared_build(kit.build_emulated_library, tmp_path_factory))
    except RuntimeError as e:
        pytest.skip(str(e))
    except subprocess.CalledProcessError as e:
        pytest.fail(f"the kernels did not compile against the emulation:\n{e.stderr[-6000:]}")


@pytest.mark.parametrize("name", CASES)
def test_host_math_matches_reference_on_nonfinite(host: kit.HostSampler, name: str) -> None:
    img, sal, out_hw, pad, fwhm, _ = CASES[name]
    out = host.sample(img, host.coarse_grid(sal, pad, fwhm), out_hw)
    assert_same_nonfinite(out, _reference(name), FP32_TOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("name", CASES)
def test_emulated_kernels_match_reference_on_nonfinite(emulated: kit.EmulatedKernels, name: str, dtype) -> None:
    img, sal, out_hw, pad, fwhm, _ = CASES[name]
    image = img.astype(dtype)
    out, _ = emulated.run(image, sal, out_hw, pad, fwhm)
    assert out.dtype == dtype
    tol = FP32_TOL if dtype == np.float32 else FP16_TOL * float(np.nanmax(img[np.isfinite(img)]))
    assert_same_nonfinite(out, _reference(name, image.astype(np.float32)), tol)
