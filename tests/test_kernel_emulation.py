"""The real CUDA kernels on the CPU: ``plugins/inhomogeneousSampleKernel.cu`` compiled by g++ against the emulation in
``plugins/tests/emulation/`` and compared with the reference ``frpt.sampling``.

The emulation (``cudaEmulation.h``) runs every CUDA thread of a block as a ``std::thread``, ``__syncthreads`` as the
block's ``std::barrier``, dynamic shared memory as one buffer filled with NaN bytes before every block and checked
past the launch's size after it, ``__half`` as a host half type, and ``cudaLaunchKernelEx`` (the kernels' launch
call) synchronously after the runtime's configuration checks. So CI runs the kernels' own indexing, shared-memory
layout, barriers and launch geometry, not only the per-element math that ``test_kernel_host_math.py`` covers.

Thresholds as on the GPU (``test_kernel_gpu.py``): fp32 <= 1e-5 and fp16 <= 2e-3 x image range on images smooth at
the pixel scale; output and workspace poisoned with NaN before each launch. The sanitizer runs build
``plugins/tests/kernelEmulationCheck.cpp`` (emulated kernels vs host math) with ASan + UBSan and with ThreadSanitizer.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sampler_testkit as kit
import torch

from frpt.sampling import coarse_grid, inhomogeneous_sample

FP32_TOL = 1e-5
FP16_TOL = 2e-3
GRID_TOL = 5e-6
COARSE_THREADS, SAMPLE_THREADS = 1024, 256

# (n, c, (h, w), g, pad, fwhm, (out_h, out_w)), saliency kind. Indexing, barriers and shared-memory layout do not
# depend on the saliency, so each shape gets one kind (all five appear); test_kernel_host_math.py crosses them all.
CASES = [
    ((1, 3, (224, 224), 31, 30, 13.0, (224, 224)), "several_peaks"),  # the model's case
    ((3, 1, (97, 131), 17, 8, 13.0, (64, 48)), "sharp_peak"),  # odd sizes, C = 1, batch
    ((2, 2, (97, 131), 17, 8, 5.5, (131, 97)), "empty_corners"),  # odd sizes, output taller than wide
    ((2, 3, (45, 33), 63, 30, 13.0, (50, 70)), "random"),  # g at the shared-memory limit (pad 30): 3969 cells
    ((1, 1, (16, 16), 32, 0, 3.0, (17, 15)), "uniform"),  # g^2 = 1024: one cell per thread, no padding
    ((1, 2, (5, 7), 2, 0, 1.0, (3, 9)), "several_peaks"),  # the smallest grid
]
CASE_IDS = [f"n{c[0]}c{c[1]}_{c[2][0]}x{c[2][1]}_g{c[3]}p{c[4]}_{c[6][0]}x{c[6][1]}-{k}" for c, k in CASES]


def shared_bytes(g: int, pad: int) -> int:
    """The coarse kernel's dynamic shared memory: saliency, two row-pass planes, taps, lattice coordinates."""
    return (3 * g * g + (2 * pad + 1) + (g + 2 * pad)) * 4


@pytest.fixture(scope="module")
def emulated(tmp_path_factory: pytest.TempPathFactory) -> kit.EmulatedKernels:
    try:
        kit.host_compiler()
    except RuntimeError as e:
        pytest.skip(str(e))
    try:
        return kit.EmulatedKernels(kit.shared_build(kit.build_emulated_library, tmp_path_factory))
    except subprocess.CalledProcessError as e:
        pytest.fail(f"the kernels did not compile against the emulation (warnings are errors):\n{e.stderr[-6000:]}")


@pytest.mark.parametrize("case, kind", CASES, ids=CASE_IDS)
def test_emulated_kernels_match_reference(emulated: kit.EmulatedKernels, case: tuple, kind: str) -> None:
    n, c, hw, g, pad, fwhm, out_hw = case
    rng = np.random.default_rng([*map(ord, kind), n, c, g, pad])
    sal = kit.saliency_maps(kind, n, g, rng)
    image = kit.smooth_images(n, c, hw, rng)

    out, grid = emulated.run(image, sal, out_hw, pad, fwhm)
    assert np.abs(grid - coarse_grid(torch.from_numpy(sal), pad, fwhm).numpy()).max() <= GRID_TOL
    ref = inhomogeneous_sample(torch.from_numpy(image), torch.from_numpy(sal), out_hw, pad, fwhm).numpy()
    assert not np.isnan(out).any(), "unwritten (NaN-poisoned) output pixels"
    assert np.abs(out - ref).max() <= FP32_TOL

    half = image.astype(np.float16)
    out16, _ = emulated.run(half, sal, out_hw, pad, fwhm)
    assert out16.dtype == np.float16 and not np.isnan(out16).any()
    ref16 = inhomogeneous_sample(torch.from_numpy(half.astype(np.float32)), torch.from_numpy(sal), out_hw, pad, fwhm)
    value_range = float(half.max()) - float(half.min())
    assert np.abs(out16.astype(np.float32) - ref16.numpy()).max() <= FP16_TOL * value_range


def test_launch_geometry(emulated: kit.EmulatedKernels) -> None:
    """One block of 1024 threads per image with exactly the shared memory it needs; one thread per output pixel."""
    n, c, hw, g, pad, fwhm, out_hw = CASES[3][0]
    rng = np.random.default_rng(0)
    emulated.take_launches()
    emulated.run(kit.smooth_images(n, c, hw, rng), kit.saliency_maps("random", n, g, rng), out_hw, pad, fwhm)
    blocks = -(-out_hw[0] * out_hw[1] // SAMPLE_THREADS)
    assert emulated.take_launches() == [
        ((n, 1, 1), (COARSE_THREADS, 1, 1), shared_bytes(g, pad)),
        ((blocks, n, 1), (SAMPLE_THREADS, 1, 1), 0),
    ]
    assert shared_bytes(63, 30) <= 48 * 1024 < shared_bytes(64, 30)


def test_empty_batch_launches_nothing(emulated: kit.EmulatedKernels) -> None:
    emulated.take_launches()
    image = np.zeros((0, 3, 8, 8), np.float32)
    out, _ = emulated.run(image, np.zeros((0, 1, 4, 4), np.float32), (8, 8), 1, 2.0)
    assert out.shape == (0, 3, 8, 8)
    assert emulated.take_launches() == []


def test_sample_grid_size_is_computed_in_int64(emulated: kit.EmulatedKernels) -> None:
    """out_h * out_w up to 2^31 - 1 is valid; `out_h * out_w + 255` must not wrap in int32 (dry run: nothing runs)."""
    out_w = 2**31 - 101
    params = kit.make_params(2, 1, (4, 4), 4, (1, out_w), 1, 2.0)
    emulated.take_launches()
    emulated.set_dry_run(True)
    try:
        assert emulated.inhomogeneous_sample(params, False, 0, 0, 0, 0, 0) == 0
    finally:
        emulated.set_dry_run(False)
    launches = emulated.take_launches()
    assert launches[1][0] == (-(-out_w // SAMPLE_THREADS), 2, 1), launches


def _tool_links(flag: str, tmp_path: Path) -> bool:
    src = tmp_path / "probe.cpp"
    src.write_text("int main() { return 0; }\n")
    cmd = [kit.host_compiler(), flag, str(src), "-o", str(tmp_path / "probe")]
    return subprocess.run(cmd, capture_output=True).returncode == 0


@pytest.mark.parametrize(
    "sanitize, args",
    [
        pytest.param("address,undefined", [], marks=pytest.mark.slow),
        pytest.param("thread", ["--quick"], marks=pytest.mark.slow),
    ],
    ids=["asan_ubsan", "tsan"],
)
def test_emulated_kernels_under_sanitizers(tmp_path: Path, sanitize: str, args: list[str]) -> None:
    """No data race (a missing barrier is one), no out-of-bounds or undefined behaviour, and still the host math."""
    try:
        kit.host_compiler()
    except RuntimeError as e:
        pytest.skip(str(e))
    if not _tool_links(f"-fsanitize={sanitize}", tmp_path):
        pytest.skip(f"the C++ compiler cannot link -fsanitize={sanitize} (sanitizer runtime not installed)")
    try:
        exe = kit.build_emulation_check(tmp_path, sanitize)
    except subprocess.CalledProcessError as e:
        pytest.fail(f"kernelEmulationCheck did not build with -fsanitize={sanitize}:\n{e.stderr[-6000:]}")
    env = os.environ | {"TSAN_OPTIONS": "halt_on_error=1", "ASAN_OPTIONS": "detect_leaks=1"}
    done = subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and "PASSED: 0 failed" in done.stdout, done.stdout + done.stderr[-6000:]
    assert "Sanitizer" not in done.stderr, done.stderr[-6000:]
