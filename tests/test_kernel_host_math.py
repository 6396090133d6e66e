"""CPU proof of the CUDA kernels' math: the host build of ``plugins/inhomogeneousSampleMath.h`` vs the reference.

``libfrpt_sampler_host.so`` runs the very functions the kernels run (coordinate, weight and blur code shared
through ``__host__ __device__`` inline functions), compiled with g++ into a temp dir. It must match
``frpt.sampling`` (fp32, CPU) to 1e-5 on the coarse grid and the sampled image. The GPU test
(``test_kernel_gpu.py``) then proves the device code itself.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sampler_testkit as kit
import torch

from frpt.sampling import coarse_grid, inhomogeneous_sample

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"

# Images lie in [0, 1], so absolute = relative to the image range. Output error is (grid error) x (image
# gradient) x (W-1)/2: 1e-5 holds for images smooth at the pixel scale (the fp32 reference itself is ~1e-4
# off the fp64 one on white noise), which the white-noise test below covers with a relative criterion.
TOL = 1e-5
GRID_TOL = 5e-6

# (n, c, (h, w), g, pad, fwhm, (out_h, out_w)): the model's case and the odd shapes.
CASES = [
    (2, 3, (224, 224), 31, 30, 13.0, (224, 224)),
    (3, 1, (97, 131), 17, 8, 13.0, (64, 48)),
    (2, 3, (97, 131), 17, 8, 5.5, (131, 97)),
    (1, 2, (5, 7), 2, 0, 1.0, (3, 9)),
]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> kit.HostSampler:
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("no C++ compiler (g++/c++) on PATH to build libfrpt_sampler_host.so")
    try:
        lib = kit.shared_build(kit.build_host_library, tmp_path_factory)
    except subprocess.CalledProcessError as e:
        pytest.fail(f"host math library failed to compile (warnings are errors):\n{e.stderr}")
    return kit.HostSampler(lib)


@pytest.mark.parametrize("kind", kit.SALIENCY_KINDS)
@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"n{c[0]}c{c[1]}_{c[2][0]}x{c[2][1]}_g{c[3]}p{c[4]}_{c[6][0]}x{c[6][1]}"
)
def test_host_math_matches_reference(host: kit.HostSampler, case: tuple, kind: str) -> None:
    """Coarse grid within GRID_TOL and smooth random images within TOL x range of the fp32 reference."""
    n, c, hw, g, pad, fwhm, out_hw = case
    rng = np.random.default_rng([*list(map(ord, kind)), n, c, g, pad])
    sal = kit.saliency_maps(kind, n, g, rng)
    image = kit.smooth_images(n, c, hw, rng)

    grid = host.coarse_grid(sal, pad, fwhm)
    ref_grid = coarse_grid(torch.from_numpy(sal), pad, fwhm).numpy()
    assert np.abs(grid - ref_grid).max() <= GRID_TOL

    out = host.sample(image, grid, out_hw)
    ref = inhomogeneous_sample(torch.from_numpy(image), torch.from_numpy(sal), out_hw, pad, fwhm).numpy()
    assert out.shape == ref.shape
    assert np.isfinite(out).all()
    assert np.abs(out - ref).max() <= TOL


@pytest.mark.parametrize("kind", ["random", "sharp_peak"])
def test_host_math_on_white_noise_as_accurate_as_fp32_reference(host: kit.HostSampler, kind: str) -> None:
    """White noise turns each ulp of grid position into ~(W-1)/2 x range of output error, in the fp32 reference
    too (measured ~1e-4 vs fp64). Against the fp64 reference, ours must be no worse than 2x the fp32 reference."""
    n, c, hw, g, pad, fwhm, out_hw = CASES[0]
    rng = np.random.default_rng(7)
    sal = kit.saliency_maps(kind, n, g, rng)
    image = rng.uniform(0.0, 1.0, (n, c, *hw)).astype(np.float32)
    out = host.sample(image, host.coarse_grid(sal, pad, fwhm), out_hw)
    sal_t, image_t = torch.from_numpy(sal), torch.from_numpy(image)
    truth = inhomogeneous_sample(image_t.double(), sal_t.double(), out_hw, pad, fwhm).numpy()
    ref32 = inhomogeneous_sample(image_t, sal_t, out_hw, pad, fwhm).numpy()
    ours, theirs = np.abs(out - truth).max(), np.abs(ref32 - truth).max()
    assert ours <= 2.0 * theirs + 1e-6, f"host math error {ours:.3g} vs fp32 reference error {theirs:.3g}"


def test_grid_is_not_identity_for_peaked_saliency(host: kit.HostSampler) -> None:
    """The peak pulls samples towards it: the test data exercises the warp, not a near-identity resize."""
    sal = kit.saliency_maps("sharp_peak", 1, 31, np.random.default_rng(0))
    grid = host.coarse_grid(sal, 30, 13.0)
    ys, xs = np.meshgrid(np.linspace(-1, 1, 31), np.linspace(-1, 1, 31), indexing="ij")
    assert np.abs(grid - np.stack((xs, ys), -1)).max() > 0.05


def test_uniform_saliency_gives_interior_identity(host: kit.HostSampler) -> None:
    """Uniform mass: cells far from the border (>= 2 fwhm) sit at their own normalised coordinate."""
    g, pad, fwhm = 31, 30, 3.0
    grid = host.coarse_grid(kit.saliency_maps("uniform", 1, g, np.random.default_rng(0)), pad, fwhm)
    inner = slice(8, g - 8)
    coords = np.linspace(-1, 1, g)
    np.testing.assert_allclose(grid[0, inner, inner, 0], np.broadcast_to(coords[inner], (g - 16, g - 16)), atol=1e-5)
    np.testing.assert_allclose(
        grid[0, inner, inner, 1], np.broadcast_to(coords[inner, None], (g - 16, g - 16)), atol=1e-5
    )  # y: the row's coordinate


@pytest.mark.parametrize(
    "bad",
    [dict(g=1), dict(pad=-1), dict(fwhm=0.0), dict(g=64, pad=30)],
    ids=["g1", "negative_pad", "zero_fwhm", "shared_memory_limit"],
)
def test_invalid_parameters_are_rejected(host: kit.HostSampler, bad: dict) -> None:
    g, pad, fwhm = bad.get("g", 31), bad.get("pad", 30), bad.get("fwhm", 13.0)
    with pytest.raises(ValueError, match="invalid coarse-grid parameters"):
        host.coarse_grid(np.full((1, 1, g, g), 1.0 / (g * g), np.float32), pad, fwhm)
