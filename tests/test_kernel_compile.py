"""Compile checks of the CUDA kernels (no GPU needed; skip without nvcc / cmake).

* nvcc compiles ``inhomogeneousSampleKernel.cu`` for Jetson Orin (sm_87) with every warning an error;
* CMake without TensorRT headers says so plainly, still builds the kernel and host-math libraries and no plugin;
  the built C ABI then answers on the CPU (workspace size, parameter validation, empty batch) without a launch;
* CMake's default architecture list (72;87;80;86;89;90) drops what the found nvcc cannot build, with a warning.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import sampler_testkit as kit

REPO = Path(__file__).resolve().parents[1]

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH (CUDA toolkit not installed)")
needs_cmake = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not on PATH")
CUDA_SUCCESS, CUDA_ERROR_INVALID_VALUE = 0, 1


@needs_nvcc
def test_kernels_compile_for_jetson_orin_without_warnings(tmp_path: Path) -> None:
    cmd = [
        "nvcc",
        "-std=c++17",
        "-O3",
        "-arch=sm_87",
        "-Werror",
        "all-warnings",
        "-Xcompiler",
        "-Wall,-Wextra,-Werror",
        "-c",
        str(kit.KERNEL_SOURCE),
        "-o",
        str(tmp_path / "kernel.o"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "kernel.o").stat().st_size > 0


@needs_nvcc
@needs_cmake
def test_cmake_without_tensorrt_builds_kernels_and_says_so(tmp_path: Path) -> None:
    defines = {
        "CMAKE_CUDA_ARCHITECTURES": "90",
        "TensorRT_INCLUDE_DIR": str(tmp_path / "no-tensorrt"),
        "FRPT_WARNINGS_AS_ERRORS": "ON",
    }
    log = kit.cmake_build(tmp_path / "build", defines, ["all"])
    assert "TensorRT headers (NvInferRuntime.h) not found: NOT building libfrpt_plugins.so" in " ".join(log.split())
    build = tmp_path / "build"
    assert (build / "libfrpt_sampler_kernels.so").is_file() and (build / "libfrpt_sampler_host.so").is_file()
    assert not (build / "libfrpt_plugins.so").exists()

    lib = kit.KernelLibrary(build / "libfrpt_sampler_kernels.so")
    assert lib.workspace_size(37, 31) == 284672  # 37*31*31*2*4 = 284456 rounded up to 256 bytes
    assert lib.workspace_size(0, 31) == 0
    bad = kit.make_params(1, 3, (224, 224), 64, (224, 224), 30, 13.0)  # (3 g^2 + g + 4 pad + 1) * 4 > 48 KiB
    assert lib.coarse_grid(bad, 0, 0, 0) == CUDA_ERROR_INVALID_VALUE
    assert lib.inhomogeneous_sample(kit.make_params(1, 0, (8, 8), 4, (8, 8), 1, 2.0), False, 0, 0, 0, 0, 0) == (
        CUDA_ERROR_INVALID_VALUE
    )
    empty = kit.make_params(0, 3, (224, 224), 31, (224, 224), 30, 13.0)
    assert lib.inhomogeneous_sample(empty, True, 0, 0, 0, 0, 0) == CUDA_SUCCESS
    if not kit.torch_cuda_available():  # a valid launch must report the missing device, not crash
        good = kit.make_params(1, 3, (8, 8), 4, (8, 8), 1, 2.0)
        assert lib.inhomogeneous_sample(good, False, 0, 0, 0, 0, 0) not in (CUDA_SUCCESS, CUDA_ERROR_INVALID_VALUE)


@needs_nvcc
@needs_cmake
def test_cmake_default_architectures_fit_the_compiler(tmp_path: Path) -> None:
    done = subprocess.run(
        ["cmake", "-S", str(kit.PLUGIN_DIR), "-B", str(tmp_path), f"-DTensorRT_INCLUDE_DIR={tmp_path}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert done.returncode == 0, done.stdout
    cache = (tmp_path / "CMakeCache.txt").read_text()
    archs = re.search(r"^CMAKE_CUDA_ARCHITECTURES:STRING=(.*)$", cache, re.M).group(1).split(";")
    codes = subprocess.run(["nvcc", "--list-gpu-code"], capture_output=True, text=True).stdout.split()
    supported = [a for a in ("72", "87", "80", "86", "89", "90") if f"sm_{a}" in codes]
    assert archs == supported
    for dropped in sorted({"72", "87", "80", "86", "89", "90"} - set(supported)):
        assert f"cannot build sm_{dropped}" in " ".join(done.stdout.split())
