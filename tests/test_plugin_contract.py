"""Contract test of the TensorRT plugin: CMake-build ``libfrpt_plugins.so`` + ``pluginContractTest`` against every
TensorRT header version found, with -Wall -Wextra -Werror on our sources, then run the harness.

Header directories: ``$FRPT_TRT_INCLUDE`` (``os.pathsep``-separated), else ``$TensorRT_ROOT/include``, else the
checkout's ignored ``.trt/*/include`` (TensorRT 10.3 and 11.1 headers on this team's machines). Needs nvcc and
cmake; skips with the reason otherwise. One CUDA architecture (sm_90) keeps the build short. The harness needs no
libnvinfer; on a machine with a CUDA GPU it also enqueues on the device (``--require-gpu``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sampler_testkit as kit

REPO = Path(__file__).resolve().parents[1]


def tensorrt_include_dirs() -> list[Path]:
    """TensorRT header directories to test against (those holding NvInferRuntime.h)."""
    if os.environ.get("FRPT_TRT_INCLUDE"):
        candidates = [Path(p) for p in os.environ["FRPT_TRT_INCLUDE"].split(os.pathsep) if p]
    elif os.environ.get("TensorRT_ROOT"):  # noqa: SIM112 - CMake's own variable name
        candidates = [Path(os.environ["TensorRT_ROOT"]) / "include"]  # noqa: SIM112
    else:
        candidates = sorted(REPO.glob(".trt/*/include"))
    return [p for p in candidates if (p / "NvInferRuntime.h").is_file()]


_DIRS = tensorrt_include_dirs()
_MISSING = [tool for tool in ("nvcc", "cmake") if shutil.which(tool) is None]


@pytest.mark.skipif(bool(_MISSING), reason=f"needs {' and '.join(_MISSING)} on PATH")
@pytest.mark.skipif(
    not _DIRS, reason="no TensorRT headers: set FRPT_TRT_INCLUDE or TensorRT_ROOT (or fetch them into .trt/)"
)
@pytest.mark.parametrize("include_dir", _DIRS, ids=[p.parent.name for p in _DIRS])
def test_plugin_contract(include_dir: Path, tmp_path: Path) -> None:
    defines = {
        "CMAKE_CUDA_ARCHITECTURES": "90",
        "TensorRT_INCLUDE_DIR": str(include_dir),
        "FRPT_WARNINGS_AS_ERRORS": "ON",
        "CMAKE_BUILD_TYPE": "Release",
    }
    try:
        log = kit.cmake_build(tmp_path, defines, ["frpt_plugins", "pluginContractTest"])
    except subprocess.CalledProcessError as e:
        pytest.fail(f"plugin build failed against {include_dir}:\n{e.output[-6000:]}")
    assert "TensorRT headers: " + str(include_dir) in log

    cmd = [str(tmp_path / "pluginContractTest"), str(tmp_path / "libfrpt_plugins.so")]
    if kit.torch_cuda_available():
        cmd.append("--require-gpu")
    run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert run.returncode == 0, run.stdout
    assert "PASSED: 0 failed" in run.stdout
    assert run.stdout.count("PASS ") >= 40, run.stdout

    # The Python loader on the real library: without libnvinfer in the process it must say registration failed.
    code = (
        "import sys; from frpt_runtime.errors import FrptError\n"
        "from frpt_runtime.plugin_library import load_plugin_library\n"
        "try:\n    print('loaded', load_plugin_library(sys.argv[1]))\nexcept FrptError as e:\n    print('error', e)\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code, cmd[1]], capture_output=True, text=True, timeout=120)
    linked = "libnvinfer" in subprocess.run(["ldd", cmd[1]], capture_output=True, text=True).stdout
    expected = "loaded " if linked else "could not register InhomogeneousSample with TensorRT"
    assert expected in loaded.stdout, loaded.stdout + loaded.stderr

    sanitizer = shutil.which("compute-sanitizer")
    if kit.torch_cuda_available() and sanitizer is not None:  # enqueue under memcheck: no bad access
        checked = subprocess.run(
            [sanitizer, "--tool", "memcheck", "--error-exitcode", "99", *cmd],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
        assert checked.returncode == 0 and "ERROR SUMMARY: 0 errors" in checked.stdout, checked.stdout[-4000:]
