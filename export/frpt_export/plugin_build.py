"""``frpt-export build-plugin``: configure and build the TensorRT plugin library with CMake, where it will run.

Torch-free and onnx-free, so a Jetson with only the base install runs it. The CMake project comes from the
installed package (``frpt_export/plugin_sources``, which the wheel carries: ``setup.py``) or, in a checkout or an
editable install, from ``plugins/``. The build folder (``-o``; default
:func:`frpt_runtime.plugin_library.user_plugin_dir`, where the runtime's plugin search looks) keeps CMake's tree,
so a second run rebuilds only what changed. Only ``libfrpt_plugins.so`` is built; ``cmake --build DIR --target
pluginContractTest`` adds the C++ contract harness (plugins/README.md, Tests).

Prerequisites, each a one-line error: CMake >= 3.22 (on ``PATH`` or beside this Python, as ``pip install cmake``
puts it); nvcc (CMake's search: ``-DCMAKE_CUDA_COMPILER``, ``$CUDACXX``, ``$CUDA_PATH/bin``, ``$CUDA_HOME/bin``,
``PATH``, ``/usr/local/cuda/bin``); TensorRT >= 10 headers (``--tensorrt-root``, else ``$TensorRT_ROOT``, else the
system paths such as JetPack's ``/usr/include/aarch64-linux-gnu``). CMake's own message is condensed to that line;
the full log stays in the build folder (``frpt-build-plugin.log``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frpt_runtime.errors import FrptError
from frpt_runtime.output_paths import check_output_dir
from frpt_runtime.plugin_library import ENV_VAR, LIBRARY_NAME, find_plugin_library, user_plugin_dir

__all__ = ["PluginBuildJob", "PluginBuildReport", "build_plugin", "plugin_source_dir"]

CMAKE_MINIMUM = (3, 22)
LOG_NAME = "frpt-build-plugin.log"
_HEADERS = "include/NvInferRuntime.h"


@dataclass(frozen=True)
class PluginBuildJob:
    """What ``frpt-export build-plugin`` was asked for.

    Attributes:
        out: the build folder (default: :func:`~frpt_runtime.plugin_library.user_plugin_dir`).
        tensorrt_root: TensorRT prefix holding ``include/`` (default: ``$TensorRT_ROOT``, then the system paths).
        cuda_architectures: ``CMAKE_CUDA_ARCHITECTURES`` (e.g. ``87``, ``80;90``); default: the plugin's list
            minus the architectures the found nvcc cannot build.
    """

    out: Path | None = None
    tensorrt_root: Path | None = None
    cuda_architectures: str | None = None


@dataclass(frozen=True)
class PluginBuildReport:
    """The library built and whether the runtime finds it without being told."""

    library: str
    build_dir: str
    source_dir: str
    cmake: str
    tensorrt_headers: str | None
    found_by_runtime: bool
    seconds: float

    def __bool__(self) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def format(self) -> str:
        """Two lines: the library, then how the runtime finds it."""
        found = (
            "the runtime finds it (its default plugin search)"
            if self.found_by_runtime
            else f"export {ENV_VAR}={self.library}  (the runtime's default search does not look here)"
        )
        return (
            f"plugin  {self.library} (TensorRT headers {self.tensorrt_headers}; {self.cmake}; "
            f"{self.seconds:.1f} s; sources {self.source_dir})\nuse     {found}"
        )


def plugin_source_dir() -> Path:
    """The plugin's CMake project: the installed package's copy, else a checkout's ``plugins/``.

    Raises:
        FrptError: neither is there (an install made without the plugin sources).
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "plugin_sources", here.parents[1] / "plugins"):
        if (candidate / "CMakeLists.txt").is_file():
            return candidate
    raise FrptError(
        f"the plugin's CMake project is not installed with {here} (no plugin_sources/): reinstall frpt-toolkit from "
        "its wheel or sdist, or build from a checkout with `cmake -S plugins -B plugins/build`"
    )


def _cmake() -> tuple[str, str]:
    """``(path, version)`` of a CMake >= 3.22: on PATH, else beside this Python (``pip install cmake``)."""
    beside = Path(sys.executable).with_name("cmake")
    path = shutil.which("cmake") or (str(beside) if beside.is_file() else None)
    if path is None:
        raise FrptError(
            "CMake not found (on PATH or beside this Python): install CMake >= 3.22 (`apt-get install cmake` or "
            "`pip install cmake`)"
        )
    done = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"version (\d+)\.(\d+)(\.\d+)?", done.stdout)
    if match is None or (int(match.group(1)), int(match.group(2))) < CMAKE_MINIMUM:
        found = "an unreadable version" if match is None else f"CMake {match.group(0).split()[1]}"
        raise FrptError(f"{path} is {found}; the plugin needs CMake >= 3.22 (`pip install cmake`)")
    return path, match.group(0).split()[1]


def condensed_error(log: str) -> str:
    """One line from CMake's or the compiler's output: the first ``CMake Error`` with its indented message (blank
    lines inside it included, up to the next unindented line), else the first compiler ``error``, else the last
    line."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("CMake Error"):
            body = []
            for follow in lines[i + 1 :]:
                if follow.strip() and not follow[0].isspace():
                    break
                body += [follow.strip()] if follow.strip() else []
            return " ".join(body) if body and line.rstrip().endswith(":") else " ".join([line.strip(), *body])
    errors = [line.strip() for line in lines if re.search(r"\berror\b", line, re.IGNORECASE)]
    return errors[0] if errors else next((line.strip() for line in reversed(lines) if line.strip()), "no output")


def _run(command: list[str], log: Path, what: str) -> str:
    """Run one CMake step, append its output to ``log``, and turn a failure into one line."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(command)}\n{output}\n")
    if done.returncode != 0:
        raise FrptError(f"{what} failed: {condensed_error(output)} (full log: {log})")
    return output


def _configure_command(cmake: str, source: Path, out: Path, job: PluginBuildJob) -> list[str]:
    """CMake's configure line: Release, the plugin required, the TensorRT headers looked up afresh."""
    root = job.tensorrt_root if job.tensorrt_root is not None else os.environ.get("TensorRT_ROOT", "")  # noqa: SIM112 - CMake's own spelling
    command = [cmake, "-S", str(source), "-B", str(out), "-DCMAKE_BUILD_TYPE=Release", "-DFRPT_REQUIRE_PLUGIN=ON"]
    command += [f"-DTensorRT_ROOT={root}", "-UTensorRT_INCLUDE_DIR"]  # a cached header path never outlives --root
    return command + ([f"-DCMAKE_CUDA_ARCHITECTURES={job.cuda_architectures}"] if job.cuda_architectures else [])


def build_plugin(job: PluginBuildJob) -> PluginBuildReport:
    """Configure and build ``libfrpt_plugins.so`` with CMake.

    Returns:
        The :class:`PluginBuildReport`.

    Raises:
        FrptError: no plugin sources, no (or too old a) CMake, ``--tensorrt-root`` without headers, an unwritable
            build folder, or a failed configure (no nvcc, no TensorRT >= 10 headers, ...) or build; one line each.
    """
    start = time.perf_counter()
    source = plugin_source_dir()
    cmake, version = _cmake()
    if job.tensorrt_root is not None and not (job.tensorrt_root / _HEADERS).is_file():
        raise FrptError(
            f"--tensorrt-root {job.tensorrt_root} holds no {_HEADERS}: give the TensorRT prefix that has include/ "
            "(a tarball's folder; with pip wheels, the NVIDIA/TensorRT OSS headers of that version: plugins/README.md)"
        )
    out = (job.out or user_plugin_dir()).expanduser().absolute()
    check_output_dir(out, "-o/--out")
    out.mkdir(parents=True, exist_ok=True)
    log = out / LOG_NAME
    log.write_text("", encoding="utf-8")
    configured = _run(_configure_command(cmake, source, out, job), log, "configuring the plugin with CMake")
    jobs = str(os.cpu_count() or 1)
    _run([cmake, "--build", str(out), "--target", "frpt_plugins", "-j", jobs], log, f"building {LIBRARY_NAME}")
    library = out / LIBRARY_NAME
    if not library.is_file():
        raise FrptError(f"CMake finished but {library} is not there (full log: {log})")
    headers = re.search(r"TensorRT headers: (.+)", configured)
    return PluginBuildReport(
        library=str(library),
        build_dir=str(out),
        source_dir=str(source),
        cmake=f"CMake {version}",
        tensorrt_headers=None if headers is None else headers.group(1).strip(),
        found_by_runtime=find_plugin_library() == library.resolve(),
        seconds=time.perf_counter() - start,
    )
