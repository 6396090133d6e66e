"""Speed of the fused InhomogeneousSample CUDA kernels vs PyTorch and vs the HBM floor (needs a CUDA GPU + nvcc).

For N in {1, 64}, C=3, 224x224 -> 224x224, g=31, pad=30, fwhm=13, fp32 and fp16 image I/O, it times (CUDA events,
median of --iters runs after warm-up, all on one stream):

* ``fused``      both kernels (coarse grid + fused sample) — what the plugin's enqueue runs;
* ``coarse`` / ``sample``  each kernel alone (where the time goes);
* ``torch_sep``  the reference ``frpt.sampling.inhomogeneous_sample`` on CUDA (separable Gaussian);
* ``torch_dense`` the released code's form (dense (2p+1)^2 Gaussian conv, then the same upsample + grid_sample);
* ``grid_sample`` ``F.grid_sample`` alone on a precomputed full-resolution grid;
* ``floor``      (image bytes read + output bytes written) / device copy bandwidth measured in the same run.

TF32 is off so the fp32 references are fp32. Run::

    .venv/bin/python benchmarks/bench_sampler_kernels.py [--lib plugins/build/libfrpt_sampler_kernels.so]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from frpt.sampling import coarse_grid, coarse_grid_dense, inhomogeneous_sample, upsample_grid

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the sampler's test kit (ctypes bindings, build commands, inputs)
import sampler_testkit as kit  # noqa: E402

G, PAD, FWHM, C, HW = 31, 30, 13.0, 3, (224, 224)


def time_us(fn: Callable[[], object], iters: int, warmup: int = 10) -> float:
    """Median wall time of ``fn`` on the current stream in microseconds (one event pair per run)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
    for start, end in pairs:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in pairs) * 1e3


def copy_bandwidth_gbs(iters: int, nbytes: int = 1 << 29) -> float:
    """Device-to-device copy bandwidth (bytes read + written per second) in GB/s."""
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    return 2 * nbytes / (time_us(lambda: dst.copy_(src), iters) * 1e-6) / 1e9


def bench_case(lib: kit.KernelLibrary, n: int, dtype: torch.dtype, bandwidth: float, iters: int) -> dict[str, float]:
    """Times in µs (and the floor) for one batch size and image dtype."""
    image = torch.rand(n, C, *HW, device="cuda").to(dtype)
    sal = torch.softmax(torch.randn(n, G * G, device="cuda") * 2.0, dim=1).view(n, 1, G, G)
    out = torch.empty_like(image)
    workspace = torch.empty(lib.workspace_size(n, G), dtype=torch.uint8, device="cuda")
    grid_full = upsample_grid(coarse_grid(sal, PAD, FWHM), HW).to(dtype)
    params = kit.make_params(n, C, HW, G, HW, PAD, FWHM)
    half = dtype == torch.float16
    stream = torch.cuda.current_stream().cuda_stream
    ptrs = image.data_ptr(), sal.data_ptr(), workspace.data_ptr(), out.data_ptr()

    def fused() -> None:
        lib.inhomogeneous_sample(params, half, *ptrs, stream)

    def dense() -> torch.Tensor:
        grid = upsample_grid(coarse_grid_dense(sal, PAD, FWHM), HW)
        return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True).to(dtype)

    assert lib.inhomogeneous_sample(params, half, *ptrs, stream) == 0, "launch failed"
    err = (out.float() - inhomogeneous_sample(image.float(), sal, HW, PAD, FWHM)).abs().max().item()
    bytes_moved = image.numel() * image.element_size() + out.numel() * out.element_size()
    return {
        "fused": time_us(fused, iters),
        "coarse": time_us(lambda: lib.coarse_grid(params, sal.data_ptr(), workspace.data_ptr(), stream), iters),
        "sample": time_us(
            lambda: lib.sample_image(params, half, image.data_ptr(), workspace.data_ptr(), out.data_ptr(), stream),
            iters,
        ),
        "torch_sep": time_us(lambda: inhomogeneous_sample(image, sal, HW, PAD, FWHM), iters),
        "torch_dense": time_us(dense, iters),
        "grid_sample": time_us(lambda: F.grid_sample(image, grid_full, align_corners=True), iters),
        "floor": bytes_moved / (bandwidth * 1e9) * 1e6,
        "max_err": err,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lib", type=Path, help="prebuilt libfrpt_sampler_kernels.so (default: build with nvcc)")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU (torch.cuda.is_available() is False)")
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    lib = kit.KernelLibrary(args.lib or kit.build_kernel_library(Path(tempfile.mkdtemp())))

    bandwidth = copy_bandwidth_gbs(args.iters)
    print(f"{torch.cuda.get_device_name()}: copy bandwidth {bandwidth:.0f} GB/s, median of {args.iters} (µs)")
    cols = ["fused", "coarse", "sample", "torch_sep", "torch_dense", "grid_sample", "floor"]
    print(
        f"{'N':>3} {'dtype':>7} "
        + " ".join(f"{c:>11}" for c in cols)
        + f" {'fused/floor':>11} {'sep/fused':>9} {'gs/fused':>8} {'max|err|':>9}"
    )
    for n in args.batches:
        for dtype in (torch.float32, torch.float16):
            r = bench_case(lib, n, dtype, bandwidth, args.iters)
            print(
                f"{n:>3} {str(dtype)[6:]:>7} "
                + " ".join(f"{r[c]:>11.1f}" for c in cols)
                + f" {r['fused'] / r['floor']:>11.2f} {r['torch_sep'] / r['fused']:>9.1f}"
                + f" {r['grid_sample'] / r['fused']:>8.2f} {r['max_err']:>9.2e}"
            )
            print(
                f"{'':>11} gap to floor {r['fused'] - r['floor']:.1f} µs = coarse grid {r['coarse']:.1f} µs (one block "
                f"per image) + sample kernel at {r['sample'] / r['floor']:.2f}x floor"
            )


if __name__ == "__main__":
    main()
