"""Compile checks of the CUDA kernels (no GPU needed; skip without nvcc / cmake).

* nvcc compiles ``inhomogeneousSampleKernel.cu`` and its C ABI for Jetson Orin (sm_87) with every warning (including
  ``-Wsign-conversion``) an error; ptxas reports no spills and the sample kernels within their register budget;
* CMake without TensorRT headers says so plainly, still builds the kernel and host-math libraries and no plugin;
  the kernel library exports exactly its C ABI, which then answers on the CPU (workspace size, parameter
  validation, empty batch) without a launch;
* CMake's default architecture list (72;87;80;86;89;90) drops what the found nvcc cannot build, with a warning,
  probing the nvcc that ``$CUDACXX`` names;
* CMake 3.22 (Ubuntu 22.04 / JetPack 6; the dev extra pins it) configures with nvcc off PATH (JetPack leaves
  ``/usr/local/cuda/bin`` off it), refuses TensorRT 8.6 headers (JetPack 6.0) and explains that ``native`` needs 3.24.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import sampler_testkit as kit

REPO = Path(__file__).resolve().parents[1]

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH (CUDA toolkit not installed)")
needs_cmake = pytest.mark.skipif(kit.dev_tool("cmake") is None, reason="no cmake (dev extra or PATH)")
CUDA_SUCCESS, CUDA_ERROR_INVALID_VALUE = 0, 1
KERNEL_EXPORTS = {
    "frptSampleWorkspaceSize",
    "frptLaunchCoarseGrid",
    "frptLaunchSampleImage",
    "frptLaunchInhomogeneousSample",
}


# Sample-kernel register budget on sm_87 (nvcc 13 uses 40; a NaN guard written as a conditional load took it to 74,
# halving the blocks an SM can hold).
SAMPLE_KERNEL_MAX_REGISTERS = 48


@needs_nvcc
def test_kernels_compile_for_jetson_orin_without_warnings_or_spills(tmp_path: Path) -> None:
    logs = {}
    for source in (kit.KERNEL_SOURCE, kit.C_API_SOURCE):
        obj = tmp_path / f"{source.stem}.o"
        cmd = [
            "nvcc",
            "-std=c++17",
            "-O3",
            "-arch=sm_87",
            "-Werror",
            "all-warnings",
            "-Xcompiler",
            ",".join((*kit.WARNINGS, "-Werror")),
            "-Xptxas",
            "-v",
            "-c",
            str(source),
            "-o",
            str(obj),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert obj.stat().st_size > 0
        logs[source] = done.stdout + done.stderr
    ptxas = logs[kit.KERNEL_SOURCE]
    names = r"(coarseGridKernel|sampleImageKernelIf|sampleImageKernelI6__half)"
    kernels = re.findall(rf"Compiling entry function '\S*?{names}", ptxas)
    registers = dict(zip(kernels, map(int, re.findall(r"Used (\d+) registers", ptxas)), strict=False))
    spills = re.findall(r"(\d+) bytes spill (?:stores|loads)", ptxas)
    assert len(registers) == 3 and spills and set(spills) == {"0"}, ptxas
    sample = max(registers["sampleImageKernelIf"], registers["sampleImageKernelI6__half"])
    assert sample <= SAMPLE_KERNEL_MAX_REGISTERS, ptxas


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
    if shutil.which("nm"):  # exactly the C ABI (version script; kernels and std:: instances stay local)
        nm = subprocess.run(
            ["nm", "-D", "--defined-only", str(build / "libfrpt_sampler_kernels.so")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert {line.split()[-1] for line in nm.splitlines() if line.strip()} == KERNEL_EXPORTS

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


def _env_without_nvcc() -> dict[str, str]:
    """The environment with no nvcc on PATH and no CUDA location variables (what a stock JetPack shell has)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CUDACXX", "CUDA_PATH", "CUDA_HOME")}
    dirs = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(d for d in dirs if d and not (Path(d) / "nvcc").exists())
    assert shutil.which("nvcc", path=env["PATH"]) is None
    return env


def _configure(build: Path, defines: dict[str, str], env: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [kit.dev_tool("cmake"), "-S", str(kit.PLUGIN_DIR), "-B", str(build)]
    cmd += [f"-D{k}={v}" for k, v in defines.items()]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _cache(build: Path, name: str) -> str:
    return re.search(rf"^{name}:[A-Z]+=(.*)$", (build / "CMakeCache.txt").read_text(), re.M).group(1)


@needs_nvcc
@needs_cmake
def test_cmake_default_architectures_fit_the_compiler_named_by_cudacxx(tmp_path: Path) -> None:
    """The architecture probe runs the nvcc of $CUDACXX (a file, not a folder to search), with nvcc off PATH."""
    calls = tmp_path / "nvcc-calls.log"
    wrapper = tmp_path / "cuda" / "bin" / "nvcc"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {shutil.which("nvcc")} "$@"\n')
    wrapper.chmod(0o755)
    env = _env_without_nvcc() | {"CUDACXX": str(wrapper)}
    done = _configure(tmp_path / "build", {"TensorRT_INCLUDE_DIR": str(tmp_path)}, env)
    assert done.returncode == 0, done.stdout
    assert "--list-gpu-code" in calls.read_text()
    archs = _cache(tmp_path / "build", "CMAKE_CUDA_ARCHITECTURES").split(";")
    codes = subprocess.run([str(wrapper), "--list-gpu-code"], capture_output=True, text=True).stdout.split()
    supported = [a for a in ("72", "87", "80", "86", "89", "90") if f"sm_{a}" in codes]
    assert archs == supported
    for dropped in sorted({"72", "87", "80", "86", "89", "90"} - set(supported)):
        assert f"cannot build sm_{dropped}" in " ".join(done.stdout.split())


JETPACK_NVCC = Path("/usr/local/cuda/bin/nvcc")


@needs_cmake
def test_cmake_322_configures_with_nvcc_off_path_and_refuses_tensorrt_8(tmp_path: Path) -> None:
    cmake = kit.dev_tool("cmake")
    version = subprocess.run([cmake, "--version"], capture_output=True, text=True).stdout.split()[2]
    if not version.startswith("3.22."):
        pytest.skip(f"needs CMake 3.22 (the dev extra pins cmake==3.22.1); {cmake} is {version}")
    if not JETPACK_NVCC.is_file():
        pytest.skip(f"no {JETPACK_NVCC} (the CUDA installer's / JetPack's layout) to find with nvcc off PATH")
    env = _env_without_nvcc()
    headers = sorted(Path(kit.PLUGIN_DIR.parent).glob(".trt/v10*/include"))
    defines = {"CMAKE_CUDA_ARCHITECTURES": "87", "TensorRT_INCLUDE_DIR": str(headers[0] if headers else tmp_path)}
    done = _configure(tmp_path / "build", defines, env)
    assert done.returncode == 0, done.stdout
    assert _cache(tmp_path / "build", "CMAKE_CUDA_COMPILER") == str(JETPACK_NVCC)
    if headers:
        assert "TensorRT headers: " in done.stdout

    trt86 = tmp_path / "trt86"  # what JetPack 6.0's /usr/include/aarch64-linux-gnu holds, reduced to the version
    trt86.mkdir()
    (trt86 / "NvInferRuntime.h").write_text("#pragma once\n")
    (trt86 / "NvInferVersion.h").write_text(
        "#define NV_TENSORRT_MAJOR 8 //!< TensorRT major version.\n"
        "#define NV_TENSORRT_MINOR 6\n#define NV_TENSORRT_PATCH 2\n"
    )
    refused = _configure(tmp_path / "build", {"TensorRT_INCLUDE_DIR": str(trt86)}, env)
    text = " ".join(refused.stdout.split())
    assert refused.returncode != 0 and "TensorRT 8.6 headers" in text and "JetPack 6.1+ (TensorRT 10.3)" in text, text

    native = _configure(tmp_path / "native", {"CMAKE_CUDA_ARCHITECTURES": "native"}, env)
    text = " ".join(native.stdout.split())
    assert native.returncode != 0 and "native needs CMake >= 3.24" in text, text
