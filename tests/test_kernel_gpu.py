"""GPU parity of the CUDA kernels vs the PyTorch reference ``frpt.sampling`` (skips without a CUDA GPU or nvcc).

The kernels are compiled with nvcc for the local GPU (``-arch=native``) and called through their C ABI with
torch's device pointers and current stream. Every output (and the workspace) is poisoned with NaN before the launch,
so an unwritten pixel fails. Cases: g=31 / pad=30 / fwhm=13 at 224 -> 224 and the odd g=17 / pad=8 / 97x131 -> 64x48
with C in {1, 3} and N in {1, 37}; saliency uniform, random, one sharp peak, several peaks, empty corners.

Thresholds (image values in [0, 1], so absolute = relative to the image range): fp32 max |diff| <= 1e-5 and fp16
<= 2e-3 on random images smooth at the pixel scale; on white noise each ulp of grid position is amplified by
(W-1)/2 in every implementation (the fp32 reference is ~1e-4 off the fp64 one), so there the kernels must be no
worse than 2x the fp32 reference against the fp64 reference. NaN / Inf inputs (``test_kernel_nonfinite.py``'s cases)
must give NaN / Inf exactly where the CPU reference does. Memcheck: see plugins/README.md.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sampler_testkit as kit
import torch
from test_kernel_nonfinite import CASES as NONFINITE_CASES
from test_kernel_nonfinite import _reference as nonfinite_reference
from test_kernel_nonfinite import assert_same_nonfinite

from frpt.sampling import coarse_grid, inhomogeneous_sample

REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"),
    pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc to build the kernels"),
]

FP32_TOL = 1e-5
FP16_TOL = 2e-3
GRID_TOL = 5e-6

# (n, c, (h, w), g, pad, fwhm, (out_h, out_w))
CASES = [
    (1, 3, (224, 224), 31, 30, 13.0, (224, 224)),
    (37, 3, (224, 224), 31, 30, 13.0, (224, 224)),
    (1, 1, (97, 131), 17, 8, 13.0, (64, 48)),
    (37, 1, (97, 131), 17, 8, 13.0, (64, 48)),
    (37, 3, (97, 131), 17, 8, 13.0, (64, 48)),
]
CASE_IDS = [f"n{c[0]}c{c[1]}_{c[2][0]}x{c[2][1]}_g{c[3]}p{c[4]}_{c[6][0]}x{c[6][1]}" for c in CASES]


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> kit.KernelLibrary:
    try:
        return kit.KernelLibrary(kit.build_kernel_library(tmp_path_factory.mktemp("kernels")))
    except subprocess.CalledProcessError as e:
        pytest.fail(f"kernel library failed to compile:\n{e.stderr}")


@pytest.fixture(autouse=True)
def _exact_fp32_reference():
    """cuDNN convolutions default to TF32 on Ampere+; the fp32 reference must be real fp32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _nan(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    return torch.full(shape, float("nan"), dtype=dtype, device="cuda")


def run_kernels(lib: kit.KernelLibrary, image: torch.Tensor, sal: torch.Tensor, out_hw, pad: int, fwhm: float):
    """Both launches on the current stream; returns (output, coarse grid) read back after a sync."""
    n, c, h, w = image.shape
    g = sal.shape[-1]
    params = kit.make_params(n, c, (h, w), g, out_hw, pad, fwhm)
    out = _nan((n, c, *out_hw), image.dtype)
    workspace = _nan((lib.workspace_size(n, g) // 4,), torch.float32)
    stream = torch.cuda.current_stream().cuda_stream
    status = lib.inhomogeneous_sample(
        params,
        image.dtype == torch.float16,
        image.data_ptr(),
        sal.data_ptr(),
        workspace.data_ptr(),
        out.data_ptr(),
        stream,
    )
    assert status == 0, f"launch failed with cudaError {status}"
    torch.cuda.synchronize()
    return out, workspace[: n * g * g * 2].view(n, g, g, 2)


@pytest.mark.parametrize("kind", kit.SALIENCY_KINDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_kernels_match_reference(kernels: kit.KernelLibrary, case: tuple, kind: str) -> None:
    n, c, hw, g, pad, fwhm, out_hw = case
    rng = np.random.default_rng([*list(map(ord, kind)), n, c, g])
    sal = torch.from_numpy(kit.saliency_maps(kind, n, g, rng)).cuda()
    image = torch.from_numpy(kit.smooth_images(n, c, hw, rng)).cuda()

    out, grid = run_kernels(kernels, image, sal, out_hw, pad, fwhm)
    assert (grid - coarse_grid(sal, pad, fwhm)).abs().max().item() <= GRID_TOL
    ref = inhomogeneous_sample(image, sal, out_hw, pad, fwhm)
    assert not out.isnan().any(), "unwritten (NaN-poisoned) output pixels"
    assert (out - ref).abs().max().item() <= FP32_TOL

    half = image.half()
    out16, _ = run_kernels(kernels, half, sal, out_hw, pad, fwhm)
    assert out16.dtype == torch.float16 and not out16.isnan().any()
    ref16 = inhomogeneous_sample(half.float(), sal, out_hw, pad, fwhm)
    value_range = (half.max() - half.min()).float().item()
    assert (out16.float() - ref16).abs().max().item() <= FP16_TOL * value_range


@pytest.mark.parametrize("case", [CASES[1], CASES[4]], ids=[CASE_IDS[1], CASE_IDS[4]])
def test_kernels_on_white_noise_as_accurate_as_fp32_reference(kernels: kit.KernelLibrary, case: tuple) -> None:
    n, c, hw, g, pad, fwhm, out_hw = case
    rng = np.random.default_rng(11)
    sal = torch.from_numpy(kit.saliency_maps("several_peaks", n, g, rng)).cuda()
    image = torch.from_numpy(rng.uniform(0.0, 1.0, (n, c, *hw)).astype(np.float32)).cuda()
    out, _ = run_kernels(kernels, image, sal, out_hw, pad, fwhm)
    truth = inhomogeneous_sample(image.double(), sal.double(), out_hw, pad, fwhm)
    ours = (out.double() - truth).abs().max().item()
    theirs = (inhomogeneous_sample(image, sal, out_hw, pad, fwhm).double() - truth).abs().max().item()
    assert ours <= 2.0 * theirs + 1e-6, f"kernel error {ours:.3g} vs fp32 reference error {theirs:.3g}"


def test_launches_are_cuda_graph_capturable(kernels: kit.KernelLibrary) -> None:
    """No allocation or synchronisation inside the launchers: they record into a CUDA graph and replay correctly."""
    n, c, hw, g, pad, fwhm, out_hw = CASES[4]
    rng = np.random.default_rng(3)
    sal = torch.from_numpy(kit.saliency_maps("random", n, g, rng)).cuda()
    image = torch.from_numpy(kit.smooth_images(n, c, hw, rng)).cuda()
    params = kit.make_params(n, c, hw, g, out_hw, pad, fwhm)
    out = _nan((n, c, *out_hw), torch.float32)
    workspace = torch.empty(kernels.workspace_size(n, g), dtype=torch.uint8, device="cuda")
    args = (params, False, image.data_ptr(), sal.data_ptr(), workspace.data_ptr(), out.data_ptr())
    assert kernels.inhomogeneous_sample(*args, torch.cuda.current_stream().cuda_stream) == 0  # warm-up (module load)
    torch.cuda.synchronize()
    out.fill_(float("nan"))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        status = kernels.inhomogeneous_sample(*args, torch.cuda.current_stream().cuda_stream)
    assert status == 0
    assert out.isnan().all(), "capture must not execute the kernels"
    graph.replay()
    torch.cuda.synchronize()
    assert (out - inhomogeneous_sample(image, sal, out_hw, pad, fwhm)).abs().max().item() <= FP32_TOL


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("name", NONFINITE_CASES)
def test_kernels_match_reference_on_nonfinite(kernels: kit.KernelLibrary, name: str, dtype: torch.dtype) -> None:
    """NaN / Inf saliency or pixels: NaN and Inf where the (CPU) reference has them, the rest within tolerance."""
    img, sal, out_hw, pad, fwhm, _ = NONFINITE_CASES[name]
    image = torch.from_numpy(img).to(dtype)
    out, _ = run_kernels(kernels, image.cuda(), torch.from_numpy(sal).cuda(), out_hw, pad, fwhm)
    tol = FP32_TOL if dtype == torch.float32 else FP16_TOL * float(np.nanmax(img[np.isfinite(img)]))
    assert_same_nonfinite(out.float().cpu().numpy(), nonfinite_reference(name, image.float().numpy()), tol)
