"""``frpt-export build-plugin``: one line (exit 2) when CMake, nvcc or the TensorRT headers are missing; with headers
the library builds (with the oldest supported CMake, 3.22, from the dev extra) into the folder the runtime's plugin
search looks in, and a rebuild against other headers in the same folder picks them up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from frpt_export import plugin_build
from frpt_export.cli import app
from frpt_export.plugin_build import PluginBuildJob, build_plugin, condensed_error, plugin_source_dir
from frpt_runtime.errors import FrptError
from frpt_runtime.plugin_library import LIBRARY_NAME, default_locations, find_plugin_library, user_plugin_dir

REPO = Path(__file__).resolve().parents[1]
ROOTS = sorted(p.parent for p in REPO.glob(".trt/*/include") if (p / "NvInferRuntime.h").is_file())
SYSTEM_HEADERS = [
    Path(d) / "NvInferRuntime.h" for d in ("/usr/include/x86_64-linux-gnu", "/usr/include/aarch64-linux-gnu")
]
NVCC = shutil.which("nvcc") or (shutil.which("nvcc", path="/usr/local/cuda/bin"))
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="needs nvcc (CUDA toolkit)")
needs_headers = pytest.mark.skipif(not ROOTS, reason="no TensorRT headers in .trt/*/include (plugins/README.md)")


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The dev extra's CMake 3.22 first on PATH; no TensorRT_ROOT / FRPT_PLUGIN_LIB; a private XDG data home."""
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    monkeypatch.delenv("TensorRT_ROOT", raising=False)
    monkeypatch.delenv("FRPT_PLUGIN_LIB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def _one_line_exit_2(args: list[str], match: str) -> str:
    done = CliRunner().invoke(app, ["build-plugin", *args])
    assert done.exit_code == 2, done.output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("building") and match in lines[1], lines
    return lines[1]


def test_sources_of_a_checkout_and_the_user_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert plugin_source_dir() == REPO / "plugins"
    assert user_plugin_dir() == tmp_path / "xdg" / "frpt-toolkit" / "plugins"
    packaged, user, checkout = default_locations()
    assert user == user_plugin_dir() / LIBRARY_NAME and checkout == REPO / "plugins" / "build" / LIBRARY_NAME
    assert packaged.parent.name == "frpt_runtime"
    monkeypatch.setenv("XDG_DATA_HOME", "")
    assert user_plugin_dir() == Path.home() / ".local" / "share" / "frpt-toolkit" / "plugins"


def test_condensed_cmake_and_compiler_errors() -> None:
    cmake = (
        "-- The CXX compiler identification is GNU 12.2.0\n"
        "CMake Warning at CMakeLists.txt:52 (message):\n  a warning\n\n"
        "CMake Error at /usr/share/cmake/CMakeDetermineCUDACompiler.cmake:28 (message):\n"
        "  Could not find compiler set in environment variable CUDACXX:\n\n  /nowhere/nvcc.\n\n"
        "Call Stack (most recent call first):\n  CMakeLists.txt:60 (project)\n\n-- Configuring incomplete\n"
    )
    assert condensed_error(cmake) == "Could not find compiler set in environment variable CUDACXX: /nowhere/nvcc."
    assert condensed_error("CMake Error: The source directory /x does not exist.\n") == (
        "CMake Error: The source directory /x does not exist."
    )
    compiler = "[ 50%] Building CXX object\n/src/a.cpp:3:1: error: 'x' was not declared\nmake: *** [all] Error 2\n"
    assert condensed_error(compiler) == "/src/a.cpp:3:1: error: 'x' was not declared"
    assert condensed_error("") == "no output"


def test_missing_or_old_cmake_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(plugin_build.shutil, "which", lambda name: None)
    monkeypatch.setattr(plugin_build.sys, "executable", str(tmp_path / "bin" / "python"))
    with pytest.raises(FrptError, match=r"CMake not found \(on PATH or beside this Python\): install CMake >= 3.22"):
        build_plugin(PluginBuildJob(out=tmp_path / "out"))
    old = tmp_path / "bin" / "cmake"
    old.parent.mkdir()
    old.write_text("#!/bin/sh\necho 'cmake version 3.16.3'\n")
    old.chmod(0o755)
    with pytest.raises(FrptError, match=r"is CMake 3.16.3; the plugin needs CMake >= 3.22"):
        build_plugin(PluginBuildJob(out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_tensorrt_root_without_headers_is_refused_before_cmake(tmp_path: Path) -> None:
    (tmp_path / "trt").mkdir()
    line = _one_line_exit_2(["--tensorrt-root", str(tmp_path / "trt"), "-o", str(tmp_path / "out")], "holds no")
    assert "include/NvInferRuntime.h" in line and not (tmp_path / "out").exists()


@needs_nvcc
def test_no_headers_found_is_one_line(tmp_path: Path) -> None:
    if any(p.is_file() for p in SYSTEM_HEADERS):
        pytest.skip("this box has TensorRT headers in a system path")
    line = _one_line_exit_2(["-o", str(tmp_path / "out")], "TensorRT headers (NvInferRuntime.h) not found")
    assert "--tensorrt-root" in line and f"full log: {tmp_path / 'out' / plugin_build.LOG_NAME}" in line


def test_no_nvcc_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CUDACXX", str(tmp_path / "no" / "nvcc"))
    _one_line_exit_2(["-o", str(tmp_path / "out")], f"environment variable CUDACXX: {tmp_path / 'no' / 'nvcc'}")


def _built_version(library: Path) -> int:
    """``frptPluginTensorRTVersion()`` of a built library (major * 10000 + minor * 100 + patch of its headers), read
    in a fresh process: ``dlopen`` of a path already loaded here would return the old copy."""
    code = "import ctypes, sys; print(ctypes.CDLL(sys.argv[1]).frptPluginTensorRTVersion())"
    done = subprocess.run([sys.executable, "-c", code, str(library)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@needs_nvcc
@needs_headers
def test_builds_where_the_runtime_looks_and_rebuilds_against_other_headers(tmp_path: Path) -> None:
    runner = CliRunner()
    versions = []
    for root in ROOTS:  # 10.3 then 11.1 here, into the same (default) folder
        done = runner.invoke(app, ["build-plugin", "--tensorrt-root", str(root), "--cuda-arch", "90", "--json"])
        assert done.exit_code == 0, done.output
        document = json.loads(done.stdout)
        assert document["command"] == "frpt-export build-plugin"
        result = document["result"]
        library = user_plugin_dir() / LIBRARY_NAME
        assert result["library"] == str(library) and result["found_by_runtime"] is True
        assert result["cmake"] == "CMake 3.22.1" and result["tensorrt_headers"].startswith(str(root / "include"))
        assert find_plugin_library() == library.resolve()
        exports = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True).stdout
        assert "getCreators" in exports and "frptLoadIntoRegistry" in exports
        versions.append(result["tensorrt_headers"].rsplit("version ", 1)[1].rstrip(")"))
        assert _built_version(library) // 10000 == int(versions[-1].split(".")[0])
    assert len(set(versions)) == len(ROOTS)
