"""Contract and registration of the TensorRT plugin, against every TensorRT header version found.

CMake builds ``libfrpt_plugins.so`` + ``pluginContractTest`` (warnings are errors on our sources) per header set, once
per module; then:

* the C++ contract harness runs (``plugins/tests/pluginContractTest.cpp``; on a CUDA box also the GPU enqueue, and
  under compute-sanitizer memcheck when present);
* the library exports exactly its entry points (``nm -D``), has no ``NEEDED`` libnvinfer and no reference to
  ``getPluginRegistry`` (``readelf -d``, ``nm -D -u``): nothing but TensorRT's registry can register it;
* the route a real TensorRT box uses: a stub libnvinfer built by the test from ``plugins/tests/stubNvinfer.cpp``
  (``getInferLibVersion``, ``getPluginRegistry`` with a recording ``loadLibrary``) is loaded with local scope, as
  NVIDIA's Python wheels and bindings load libnvinfer; ``frpt_runtime.plugin_library`` then registers the real
  library through it -- with and without a TensorRT Python module (a stand-in whose ``load_library`` calls the stub's
  ``loadLibrary``, as the bindings do) -- and the stub's registry must hold ``InhomogeneousSample/1/frpt``;
* a library built for one TensorRT major is refused under the other, and a second copy is named as such.

Header directories: ``$FRPT_TRT_INCLUDE`` (``os.pathsep``-separated), else ``$TensorRT_ROOT/include``, else the
checkout's ignored ``.trt/*/include`` (TensorRT 10.3 and 11.1 headers on this team's machines;
``sampler_testkit.tensorrt_include_dirs``). Needs nvcc and cmake; skips with the reason otherwise. One CUDA
architecture (sm_90) keeps the build short; the builds are shared with ``tests/test_plugin_autoload.py``. No
libnvinfer needed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sampler_testkit as kit

EXPORTS = {
    "getCreators",
    "setLoggerFinder",
    "frptPluginRegistered",
    "frptPluginTensorRTVersion",
    "frptLoadIntoRegistry",
}
_DIRS = kit.tensorrt_include_dirs()
_IDS = [p.parent.name for p in _DIRS]
pytestmark = kit.plugin_build_skips()


@pytest.fixture(scope="module")
def plugin_build(tmp_path_factory: pytest.TempPathFactory):
    """include dir -> CMake build dir with libfrpt_plugins.so, libfrpt_plugins_autoload.so and pluginContractTest
    (one build per header set and test session, shared with tests/test_plugin_autoload.py)."""

    def build(include_dir: Path) -> Path:
        try:
            out = kit.shared_build(kit.build_plugin_libraries, tmp_path_factory, include_dir)
        except subprocess.CalledProcessError as e:
            pytest.fail(f"plugin build failed against {include_dir}:\n{e.output[-6000:]}")
        assert "TensorRT headers: " + str(include_dir) in (out / "build.log").read_text()
        return out

    return build


@pytest.fixture(scope="module")
def stub_nvinfer(tmp_path_factory: pytest.TempPathFactory):
    """include dir -> a stub libnvinfer.so.<major> built from plugins/tests/stubNvinfer.cpp against those headers."""

    def build(include_dir: Path) -> Path:
        if kit.cuda_include_dir() is None:
            pytest.skip("no CUDA include folder (cuda_runtime_api.h, which NvInferRuntime.h includes)")
        try:
            return kit.shared_build(kit.build_stub_nvinfer, tmp_path_factory, include_dir)
        except subprocess.CalledProcessError as e:
            pytest.fail(f"stub libnvinfer build failed against {include_dir}:\n{e.stderr[-6000:]}")

    return build


@pytest.mark.parametrize("include_dir", _DIRS, ids=_IDS)
def test_plugin_contract(plugin_build, include_dir: Path) -> None:
    build = plugin_build(include_dir)
    cmd = [str(build / "pluginContractTest"), str(build / "libfrpt_plugins.so")]
    if kit.torch_cuda_available():
        cmd.append("--require-gpu")
    run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert run.returncode == 0, run.stdout
    assert "PASSED: 0 failed" in run.stdout
    assert run.stdout.count("PASS ") >= 45, run.stdout

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


def _dynamic_symbols(lib: Path, which: str) -> set[str]:
    out = subprocess.run(["nm", "-D", which, str(lib)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


@pytest.mark.skipif(not (shutil.which("nm") and shutil.which("readelf")), reason="needs binutils nm and readelf")
@pytest.mark.parametrize("include_dir", _DIRS, ids=_IDS)
def test_plugin_library_exports_only_its_entry_points_and_needs_no_libnvinfer(plugin_build, include_dir: Path) -> None:
    build = plugin_build(include_dir)
    plugin = build / "libfrpt_plugins.so"
    assert _dynamic_symbols(plugin, "--defined-only") == EXPORTS  # no frptLaunch*, no kernels, no std:: instances
    needed = re.findall(
        r"\(NEEDED\)\s+Shared library: \[(.+?)\]",
        subprocess.run(["readelf", "-d", str(plugin)], capture_output=True, text=True, check=True).stdout,
    )
    assert needed and not [n for n in needed if "nvinfer" in n], needed
    assert "getPluginRegistry" not in _dynamic_symbols(plugin, "--undefined-only")


# Runs in a fresh interpreter: load the stub libnvinfer with local scope, then register the plugin through the loader.
_LOADER = r"""
import ctypes, json, sys
from types import SimpleNamespace
from frpt_runtime.errors import FrptError
from frpt_runtime.plugin_library import load_plugin_library

stub_path, plugins, route, version = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4]
stub = ctypes.CDLL(stub_path, mode=ctypes.RTLD_LOCAL)  # as NVIDIA's wheels and bindings load libnvinfer
stub.stubLoadLibrary.restype = ctypes.c_void_p
stub.stubLoadedPath.restype = ctypes.c_char_p

class Registry:  # what the bindings' IPluginRegistry offers, over the stub's C++ registry
    def load_library(self, path):
        handle = stub.stubLoadLibrary(path.encode())
        return None if handle is None else handle
    def get_creator(self, name, version, namespace):
        return object() if stub.stubHasCreator(name.encode(), version.encode(), namespace.encode()) else None

trt = None
if route == "module":
    trt = SimpleNamespace(__name__="tensorrt", __version__=version, get_plugin_registry=Registry)
result = {"registered_by_dlopen": None, "loaded": [], "error": None}
if route == "foreign":  # someone else registered the first copy straight through the registry
    stub.stubLoadLibrary(plugins.pop(0).encode())
plain = ctypes.CDLL(plugins[0], mode=ctypes.RTLD_GLOBAL)  # dlopen alone (the old static route) registers nothing
result["registered_by_dlopen"] = stub.stubNbCreators() - (1 if route == "foreign" else 0)
try:
    for plugin in plugins:
        result["loaded"].append(load_plugin_library(plugin, trt=trt))
except FrptError as e:
    result["error"] = str(e)
from frpt_runtime.contract import PLUGIN_NAMESPACE, PLUGIN_OP, PLUGIN_VERSION  # the creator's identity
result["has_creator"] = stub.stubHasCreator(PLUGIN_OP.encode(), PLUGIN_VERSION.encode(), PLUGIN_NAMESPACE.encode())
result["nb_creators"] = stub.stubNbCreators()
result["load_library_paths"] = [stub.stubLoadedPath(i).decode() for i in range(stub.stubNbLoaded())]
print(json.dumps(result))
"""


def run_loader(stub: Path, plugins: list[Path], route: str, version: str = "") -> dict:
    """The loader in a fresh interpreter: route ``ctypes`` (no module), ``module`` (fake bindings) or ``foreign``."""
    cmd = [sys.executable, "-c", _LOADER, str(stub), ",".join(map(str, plugins)), route, version]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("route", ["ctypes", "module"])
@pytest.mark.parametrize("include_dir", _DIRS, ids=_IDS)
def test_registers_through_the_registry_of_a_locally_loaded_libnvinfer(
    plugin_build, stub_nvinfer, include_dir: Path, route: str
) -> None:
    plugin = plugin_build(include_dir) / "libfrpt_plugins.so"
    major, minor = kit.header_version(include_dir)
    result = run_loader(stub_nvinfer(include_dir), [plugin], route, f"{major}.{minor}.0.1")
    assert result["registered_by_dlopen"] == 0
    assert result["error"] is None, result["error"]
    assert result["loaded"] == [str(plugin.resolve())]
    assert result["has_creator"] == 1 and result["nb_creators"] == 1
    assert result["load_library_paths"] == [str(plugin.resolve())], "registered through IPluginRegistry::loadLibrary"


def _majors() -> list[tuple[Path, Path]]:
    """(plugin headers, running headers) pairs of different majors."""
    return [(a, b) for a in _DIRS for b in _DIRS if kit.header_version(a)[0] != kit.header_version(b)[0]]


@pytest.mark.skipif(len(_majors()) == 0, reason="needs TensorRT headers of two majors (e.g. 10.3 and 11.1)")
@pytest.mark.parametrize("route", ["ctypes", "module"])
@pytest.mark.parametrize("pair", _majors(), ids=[f"{a.parent.name}-under-{b.parent.name}" for a, b in _majors()])
def test_other_tensorrt_major_is_refused(plugin_build, stub_nvinfer, pair: tuple[Path, Path], route: str) -> None:
    built, running = pair
    plugin = plugin_build(built) / "libfrpt_plugins.so"
    (bmaj, bmin), (rmaj, rmin) = kit.header_version(built), kit.header_version(running)
    result = run_loader(stub_nvinfer(running), [plugin], route, f"{rmaj}.{rmin}.0")
    message = result["error"] or ""
    assert f"built against TensorRT {bmaj}.{bmin} but this process runs TensorRT {rmaj}.{rmin}" in message, result
    assert "\n" not in message and f"-DTensorRT_ROOT=<TensorRT {rmaj}.x prefix>" in message
    assert result["nb_creators"] == 0 and result["load_library_paths"] == [], "refused before the registry saw it"


@pytest.mark.parametrize("route", ["ctypes", "foreign"])
def test_second_copy_is_named(plugin_build, stub_nvinfer, tmp_path: Path, route: str) -> None:
    """A second copy from another path: refused by name, not as 'no libnvinfer' or a late 'plugin not found'."""
    include_dir = _DIRS[0]
    first = plugin_build(include_dir) / "libfrpt_plugins.so"
    second = tmp_path / "copy" / "libfrpt_plugins.so"
    second.parent.mkdir()
    shutil.copy(first, second)
    result = run_loader(stub_nvinfer(include_dir), [first, second], route)
    assert "another copy of the plugin library" in (result["error"] or ""), result
    assert result["nb_creators"] == 1
