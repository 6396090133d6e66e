"""Test kit of the sampler: ctypes bindings of its C ABI, build commands and test inputs (numpy only).

Used by ``tests/test_kernel_*.py``, ``tests/test_plugin_contract.py``, ``tests/test_plugin_autoload.py`` and
``benchmarks/bench_sampler_kernels.py``; imports neither torch nor CUDA.

Three libraries share one parameter struct (``frpt::SampleParams`` in ``inhomogeneousSampleMath.h``):

* ``libfrpt_sampler_host.so`` — the kernels' per-element math built for the CPU with g++
  (``frptHostCoarseGrid``, ``frptHostSampleImage``; fp32 arrays);
* ``libfrpt_sampler_kernels.so`` — the CUDA kernels (``frptLaunch*``; device pointers and a ``cudaStream_t``
  passed as integers, e.g. ``tensor.data_ptr()`` and ``torch.cuda.current_stream().cuda_stream``);
* ``libfrpt_sampler_emulated.so`` — the same kernel source compiled by g++ against the CPU emulation of
  ``plugins/tests/emulation/`` (emulated threads, barriers, poisoned shared memory, host half): the same ``frptLaunch*``
  C ABI on host pointers (numpy ``ctypes.data``), plus ``frptEmulation*`` to record launches without running them.

The build commands live here so every consumer compiles the same way; CMake (``plugins/CMakeLists.txt``)
builds the first two for deployment.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugins"
HOST_SOURCE = PLUGIN_DIR / "inhomogeneousSampleHost.cpp"
KERNEL_SOURCE = PLUGIN_DIR / "inhomogeneousSampleKernel.cu"
C_API_SOURCE = PLUGIN_DIR / "inhomogeneousSampleCApi.cpp"
PLUGIN_TESTS_DIR = PLUGIN_DIR / "tests"
EMULATION_DIR = PLUGIN_TESTS_DIR / "emulation"
EMULATED_KERNELS_SOURCE = PLUGIN_TESTS_DIR / "emulatedKernels.cpp"
EMULATION_CHECK_SOURCE = PLUGIN_TESTS_DIR / "kernelEmulationCheck.cpp"
#: Warnings of every build of our C++ / CUDA host code (CMake's frpt_warnings uses the same set).
WARNINGS = ("-Wall", "-Wextra", "-Wsign-conversion")


class SampleParams(ctypes.Structure):
    """Mirror of ``frpt::SampleParams`` (8 int32 then one float32, C layout)."""

    _fields_ = [
        ("n", ctypes.c_int32),
        ("c", ctypes.c_int32),
        ("h", ctypes.c_int32),
        ("w", ctypes.c_int32),
        ("g", ctypes.c_int32),
        ("outH", ctypes.c_int32),
        ("outW", ctypes.c_int32),
        ("pad", ctypes.c_int32),
        ("fwhm", ctypes.c_float),
    ]


def make_params(
    n: int, c: int, hw: tuple[int, int], g: int, out_hw: tuple[int, int], pad: int, fwhm: float
) -> SampleParams:
    """Build the struct from the shapes of image ``[n, c, *hw]``, saliency ``[n, 1, g, g]`` and the output size."""
    return SampleParams(n, c, hw[0], hw[1], g, out_hw[0], out_hw[1], pad, fwhm)


def dev_tool(name: str) -> str | None:
    """Path of a pinned dev tool (``cmake``, ``clang-format``): the one installed beside this Python (the dev
    extra), else the first on PATH, else ``None``."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def torch_cuda_available() -> bool:
    """Whether torch is installed and sees a CUDA GPU (torch is imported only here, lazily)."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


_SHARED_BUILDS: dict[tuple[str, ...], Path] = {}


def shared_build(builder: Callable[..., Path], tmp_path_factory, *args: object) -> Path:
    """``builder(<fresh temp dir>, *args)`` once per test session (pytest's ``tmp_path_factory``); later calls with
    the same arguments reuse it."""
    key = (builder.__name__, *map(str, args))
    if key not in _SHARED_BUILDS:
        _SHARED_BUILDS[key] = builder(tmp_path_factory.mktemp(builder.__name__), *args)
    return _SHARED_BUILDS[key]


def build_host_library(out_dir: Path) -> Path:
    """Compile ``libfrpt_sampler_host.so`` with g++ (warnings are errors) into ``out_dir``; return its path."""
    lib = Path(out_dir) / "libfrpt_sampler_host.so"
    cmd = [
        host_compiler(),
        "-std=c++17",
        "-O2",
        "-fPIC",
        "-shared",
        *WARNINGS,
        "-Werror",
        str(HOST_SOURCE),
        "-o",
        str(lib),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return lib


def host_compiler() -> str:
    """The C++ compiler (g++, else c++) on PATH.

    Raises:
        RuntimeError: there is none.
    """
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise RuntimeError("no C++ compiler (g++ or c++) on PATH")
    return compiler


def cuda_include_dir() -> Path | None:
    """The CUDA toolkit's include folder (holding cuda_runtime_api.h), for host-compiled code that includes TensorRT."""
    nvcc = shutil.which("nvcc")
    candidates = [Path(os.environ[v]) / "include" for v in ("CUDA_PATH", "CUDA_HOME") if os.environ.get(v)]
    candidates += [Path(nvcc).resolve().parents[1] / "include"] if nvcc else []
    candidates.append(Path("/usr/local/cuda/include"))
    return next((d for d in candidates if (d / "cuda_runtime_api.h").is_file()), None)


def _emulation_command(sources: list[Path], out: Path, flags: list[str]) -> list[str]:
    """g++ line of the emulation harness: C++20 (std::barrier), the emulation headers before the real CUDA ones."""
    includes = ["-I", str(EMULATION_DIR), "-I", str(PLUGIN_DIR), "-I", str(PLUGIN_TESTS_DIR)]
    return [
        host_compiler(),
        "-std=c++20",
        "-pthread",
        *WARNINGS,
        "-Werror",
        *flags,
        *includes,
        *map(str, sources),
        "-o",
        str(out),
    ]


def build_emulated_library(out_dir: Path) -> Path:
    """Compile the real kernels against the CPU emulation into ``libfrpt_sampler_emulated.so``; return its path.

    Raises:
        subprocess.CalledProcessError: compilation failed (``stderr`` holds the compiler's messages).
    """
    lib = Path(out_dir) / "libfrpt_sampler_emulated.so"
    cmd = _emulation_command([EMULATED_KERNELS_SOURCE, C_API_SOURCE], lib, ["-O2", "-fPIC", "-shared"])
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return lib


def build_emulation_check(out_dir: Path, sanitize: str) -> Path:
    """Compile ``kernelEmulationCheck`` (emulated kernels vs host math) with ``-fsanitize=<sanitize>``.

    Raises:
        subprocess.CalledProcessError: compilation or linking failed.
    """
    exe = Path(out_dir) / f"kernelEmulationCheck-{sanitize.replace(',', '-')}"
    sources = [EMULATION_CHECK_SOURCE, EMULATED_KERNELS_SOURCE, HOST_SOURCE]
    flags = ["-g", "-O1", f"-fsanitize={sanitize}", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
    subprocess.run(_emulation_command(sources, exe, flags), check=True, capture_output=True, text=True)
    return exe


def build_kernel_library(out_dir: Path, arch: str = "native") -> Path:
    """Compile ``libfrpt_sampler_kernels.so`` with nvcc for ``-arch=<arch>`` into ``out_dir``; return its path."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise RuntimeError("nvcc not on PATH")
    lib = Path(out_dir) / "libfrpt_sampler_kernels.so"
    cmd = [
        nvcc,
        "-std=c++17",
        "-O3",
        f"-arch={arch}",
        "-shared",
        "-Xcompiler",
        ",".join(("-fPIC", *WARNINGS)),
        str(KERNEL_SOURCE),
        str(C_API_SOURCE),
        "-o",
        str(lib),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return lib


SALIENCY_KINDS = ("uniform", "random", "sharp_peak", "several_peaks", "empty_corners")


def saliency_maps(kind: str, n: int, g: int, rng: np.random.Generator) -> np.ndarray:
    """Fresh softmax-normalised saliency ``[n, 1, g, g]`` float32 of one of :data:`SALIENCY_KINDS`.

    ``uniform`` is exactly 1/g^2; ``sharp_peak`` puts almost all mass in one random cell; ``several_peaks`` in
    2-5 random cells; ``empty_corners`` leaves ~1e-13 of the mass in the four corner quadrants' outer cells.
    """
    yy, xx = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
    logits = rng.normal(0.0, 1.0, (n, g, g))
    if kind == "uniform":
        logits[:] = 0.0
    elif kind == "sharp_peak":
        for i in range(n):
            logits[i, rng.integers(g), rng.integers(g)] += 25.0
    elif kind == "several_peaks":
        for i in range(n):
            for _ in range(rng.integers(2, 6)):
                logits[i, rng.integers(g), rng.integers(g)] += rng.uniform(6.0, 10.0)
    elif kind == "empty_corners":
        r = np.hypot(yy - (g - 1) / 2, xx - (g - 1) / 2) / ((g - 1) / 2)
        logits -= 30.0 * np.clip(r - 0.8, 0.0, None) / 0.6
    elif kind != "random":
        raise ValueError(f"unknown saliency kind {kind!r}; one of {SALIENCY_KINDS}")
    e = np.exp(logits - logits.max(axis=(1, 2), keepdims=True))
    return (e / e.sum(axis=(1, 2), keepdims=True)).astype(np.float32)[:, None]


def smooth_images(n: int, c: int, hw: tuple[int, int], rng: np.random.Generator, cells: int = 8) -> np.ndarray:
    """Random images ``[n, c, *hw]`` float32 in [0, 1]: uniform noise on a ``(cells+1)^2`` lattice, bilinearly
    interpolated (features ~hw/cells pixels wide, like natural images at the model's input size)."""
    axes = [
        np.maximum(0.0, 1.0 - np.abs(np.linspace(0, cells, size)[:, None] - np.arange(cells + 1)[None])) for size in hw
    ]
    coarse = rng.uniform(0.0, 1.0, (n, c, cells + 1, cells + 1))
    return np.einsum("hy,ncyx,wx->nchw", axes[0], coarse, axes[1]).astype(np.float32)


def tensorrt_include_dirs() -> list[Path]:
    """TensorRT header directories to test against (those holding NvInferRuntime.h): ``$FRPT_TRT_INCLUDE``
    (``os.pathsep``-separated), else ``$TensorRT_ROOT/include``, else the checkout's ignored ``.trt/*/include``."""
    if os.environ.get("FRPT_TRT_INCLUDE"):
        candidates = [Path(p) for p in os.environ["FRPT_TRT_INCLUDE"].split(os.pathsep) if p]
    elif os.environ.get("TensorRT_ROOT"):  # noqa: SIM112 - CMake's own variable name
        candidates = [Path(os.environ["TensorRT_ROOT"]) / "include"]  # noqa: SIM112
    else:
        candidates = sorted(PLUGIN_DIR.parent.glob(".trt/*/include"))
    return [p for p in candidates if (p / "NvInferRuntime.h").is_file()]


def header_version(include_dir: Path) -> tuple[int, int]:
    """(major, minor) from NvInferVersion.h (10.x: NV_TENSORRT_MAJOR n; 11.x: TRT_MAJOR_ENTERPRISE n)."""
    text = (include_dir / "NvInferVersion.h").read_text()
    major, minor = (re.search(rf"#define (NV_TENSORRT|TRT)_{p}(_ENTERPRISE)? +(\d+)", text) for p in ("MAJOR", "MINOR"))
    return int(major.group(3)), int(minor.group(3))


#: What :func:`build_plugin_libraries` builds (the CMake targets of the plugin part).
PLUGIN_TARGETS = ("frpt_plugins", "frpt_plugins_autoload", "pluginContractTest")


def build_plugin_libraries(out_dir: Path, include_dir: Path) -> Path:
    """CMake build of ``libfrpt_plugins.so``, ``libfrpt_plugins_autoload.so`` and ``pluginContractTest`` against
    ``include_dir`` (sm_90 only, warnings are errors) into ``out_dir``; the log is kept in ``out_dir/build.log``.

    Returns:
        ``out_dir``.

    Raises:
        subprocess.CalledProcessError: configure or build failed (its ``output`` holds the log).
    """
    defines = {
        "CMAKE_CUDA_ARCHITECTURES": "90",
        "TensorRT_INCLUDE_DIR": str(include_dir),
        "FRPT_WARNINGS_AS_ERRORS": "ON",
        "CMAKE_BUILD_TYPE": "Release",
    }
    log = cmake_build(out_dir, defines, list(PLUGIN_TARGETS))
    (Path(out_dir) / "build.log").write_text(log)
    return Path(out_dir)


def build_stub_nvinfer(out_dir: Path, include_dir: Path) -> Path:
    """Compile the stub ``libnvinfer.so.<major>`` of ``plugins/tests/stubNvinfer.cpp`` against ``include_dir``.

    Raises:
        RuntimeError: no CUDA include folder (NvInferRuntime.h includes cuda_runtime_api.h).
        subprocess.CalledProcessError: compilation failed (``stderr`` holds the compiler's messages).
    """
    cuda = cuda_include_dir()
    if cuda is None:
        raise RuntimeError("no CUDA include folder (cuda_runtime_api.h, which NvInferRuntime.h includes)")
    major = header_version(include_dir)[0]
    lib = Path(out_dir) / f"libnvinfer.so.{major}"
    includes = ["-isystem", str(include_dir), "-isystem", str(cuda), "-I", str(PLUGIN_DIR), "-I", str(PLUGIN_TESTS_DIR)]
    cmd = [host_compiler(), "-std=c++17", "-shared", "-fPIC", *WARNINGS, "-Werror", *includes]
    cmd += [str(PLUGIN_TESTS_DIR / "stubNvinfer.cpp"), f"-Wl,-soname,libnvinfer.so.{major}", "-o", str(lib), "-ldl"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return lib


def cmake_build(build_dir: Path, defines: dict[str, str], targets: list[str]) -> str:
    """Configure ``plugins/`` into ``build_dir`` with ``-D`` ``defines``, build ``targets``; return the log.

    Raises:
        subprocess.CalledProcessError: configure or build failed (its ``output`` holds the log).
    """
    cmake = dev_tool("cmake")
    if cmake is None:
        raise RuntimeError("no cmake (install the dev extra, or put cmake on PATH)")
    configure = [cmake, "-S", str(PLUGIN_DIR), "-B", str(build_dir), *(f"-D{k}={v}" for k, v in defines.items())]
    build = [cmake, "--build", str(build_dir), "-j2", "--target", *targets]
    log = ""
    for cmd in (configure, build):
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        log += done.stdout
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, cmd, output=log)
    return log


class HostSampler:
    """The CPU build of the kernel math: fp32 numpy in, fp32 numpy out."""

    def __init__(self, lib_path: Path) -> None:
        self._lib = ctypes.CDLL(str(lib_path))
        f32p = ctypes.POINTER(ctypes.c_float)
        self._lib.frptHostCoarseGrid.argtypes = [SampleParams, f32p, f32p]
        self._lib.frptHostSampleImage.argtypes = [SampleParams, f32p, f32p, f32p]
        for fn in (self._lib.frptHostCoarseGrid, self._lib.frptHostSampleImage):
            fn.restype = ctypes.c_int32

    @staticmethod
    def _ptr(a: np.ndarray) -> ctypes.POINTER(ctypes.c_float):
        return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))

    def coarse_grid(self, saliency: np.ndarray, pad: int, fwhm: float) -> np.ndarray:
        """``[N, 1, g, g]`` fp32 saliency -> ``[N, g, g, 2]`` fp32 grid."""
        sal = np.ascontiguousarray(saliency, dtype=np.float32)
        n, g = sal.shape[0], sal.shape[-1]
        grid = np.empty((n, g, g, 2), np.float32)
        params = make_params(n, 1, (1, 1), g, (1, 1), pad, fwhm)
        if self._lib.frptHostCoarseGrid(params, self._ptr(sal), self._ptr(grid)) != 0:
            raise ValueError(f"invalid coarse-grid parameters: g={g}, pad={pad}, fwhm={fwhm}")
        return grid

    def sample(self, image: np.ndarray, grid: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
        """``[N, C, H, W]`` fp32 image + ``[N, g, g, 2]`` grid -> ``[N, C, out_h, out_w]`` fp32."""
        img = np.ascontiguousarray(image, dtype=np.float32)
        grd = np.ascontiguousarray(grid, dtype=np.float32)
        n, c, h, w = img.shape
        out = np.empty((n, c, *out_hw), np.float32)
        params = make_params(n, c, (h, w), grd.shape[1], out_hw, 0, 1.0)
        if self._lib.frptHostSampleImage(params, self._ptr(img), self._ptr(grd), self._ptr(out)) != 0:
            raise ValueError(f"invalid sample parameters: image {img.shape}, grid {grd.shape}, out {out_hw}")
        return out


class KernelLibrary:
    """The CUDA kernels' C ABI; every pointer and the stream are passed as Python ints. Returns cudaError_t."""

    def __init__(self, lib_path: Path) -> None:
        self._lib = ctypes.CDLL(str(lib_path))
        vp = ctypes.c_void_p
        self._lib.frptSampleWorkspaceSize.argtypes = [ctypes.c_int32, ctypes.c_int32]
        self._lib.frptSampleWorkspaceSize.restype = ctypes.c_size_t
        self._lib.frptLaunchCoarseGrid.argtypes = [SampleParams, vp, vp, vp]
        self._lib.frptLaunchSampleImage.argtypes = [SampleParams, ctypes.c_int32, vp, vp, vp, vp]
        self._lib.frptLaunchInhomogeneousSample.argtypes = [SampleParams, ctypes.c_int32, vp, vp, vp, vp, vp]
        lib = self._lib
        for fn in (lib.frptLaunchCoarseGrid, lib.frptLaunchSampleImage, lib.frptLaunchInhomogeneousSample):
            fn.restype = ctypes.c_int32

    def workspace_size(self, n: int, g: int) -> int:
        """Bytes of workspace the coarse grid of ``n`` images needs."""
        return int(self._lib.frptSampleWorkspaceSize(n, g))

    def coarse_grid(self, params: SampleParams, saliency: int, grid: int, stream: int) -> int:
        """Launch the coarse-grid kernel only."""
        return int(self._lib.frptLaunchCoarseGrid(params, saliency, grid, stream))

    def sample_image(self, params: SampleParams, is_half: bool, image: int, grid: int, output: int, stream: int) -> int:
        """Launch the fused sample kernel only (grid already computed)."""
        return int(self._lib.frptLaunchSampleImage(params, int(is_half), image, grid, output, stream))

    def inhomogeneous_sample(
        self, params: SampleParams, is_half: bool, image: int, saliency: int, workspace: int, output: int, stream: int
    ) -> int:
        """Launch both kernels (what the plugin's enqueue does)."""
        return int(
            self._lib.frptLaunchInhomogeneousSample(params, int(is_half), image, saliency, workspace, output, stream)
        )


class EmulatedKernels(KernelLibrary):
    """The kernels on the CPU emulation: :class:`KernelLibrary`'s C ABI on host pointers, plus launch records."""

    def __init__(self, lib_path: Path) -> None:
        super().__init__(lib_path)
        u32p, u64p = ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint64)
        self._lib.frptEmulationSetDryRun.argtypes = [ctypes.c_int32]
        self._lib.frptEmulationLaunchCount.restype = ctypes.c_int32
        self._lib.frptEmulationLaunch.argtypes = [ctypes.c_int32, u32p, u32p, u64p]
        self._lib.frptEmulationLaunch.restype = ctypes.c_int32

    def set_dry_run(self, on: bool) -> None:
        """With ``on``, launches are checked and recorded but not run."""
        self._lib.frptEmulationSetDryRun(int(on))

    def take_launches(self) -> list[tuple[tuple[int, int, int], tuple[int, int, int], int]]:
        """``(grid, block, dynamic shared bytes)`` of each launch since the last call, in order."""
        out = []
        for i in range(self._lib.frptEmulationLaunchCount()):
            grid, block, shared = (ctypes.c_uint32 * 3)(), (ctypes.c_uint32 * 3)(), ctypes.c_uint64()
            self._lib.frptEmulationLaunch(i, grid, block, ctypes.byref(shared))
            out.append((tuple(grid), tuple(block), int(shared.value)))
        self._lib.frptEmulationClearLaunches()
        return out

    def run(
        self, image: np.ndarray, saliency: np.ndarray, out_hw: tuple[int, int], pad: int, fwhm: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Both kernels on ``image`` ``[N, C, H, W]`` (float32 or float16) and ``saliency`` ``[N, 1, g, g]`` float32.

        Output and workspace are filled with NaN first, so an unwritten element shows.

        Returns:
            ``(output [N, C, out_h, out_w]`` in the image's dtype, ``coarse grid [N, g, g, 2]`` float32``)``.

        Raises:
            RuntimeError: the launch returned a cudaError_t other than cudaSuccess.
        """
        img = np.ascontiguousarray(image)
        sal = np.ascontiguousarray(saliency, dtype=np.float32)
        n, c, h, w = img.shape
        g = sal.shape[-1]
        out = np.full((n, c, *out_hw), np.nan, img.dtype)
        workspace = np.full(max(self.workspace_size(n, g) // 4, 1), np.nan, np.float32)
        params = make_params(n, c, (h, w), g, out_hw, pad, fwhm)
        is_half = img.dtype == np.float16
        status = self.inhomogeneous_sample(
            params, is_half, img.ctypes.data, sal.ctypes.data, workspace.ctypes.data, out.ctypes.data, 0
        )
        if status != 0:
            raise RuntimeError(f"emulated launch failed with cudaError {status}")
        return out, workspace[: n * g * g * 2].reshape(n, g, g, 2)


def plugin_build_skips() -> list:
    """The skip marks of a test module that builds the plugin with CMake against each TensorRT header set."""
    import pytest

    missing = [tool for tool, found in (("nvcc", shutil.which("nvcc")), ("cmake", dev_tool("cmake"))) if not found]
    return [
        pytest.mark.skipif(bool(missing), reason=f"needs {' and '.join(missing)}"),
        pytest.mark.skipif(
            not tensorrt_include_dirs(),
            reason="no TensorRT headers: set FRPT_TRT_INCLUDE or TensorRT_ROOT (or fetch them into .trt/)",
        ),
    ]
