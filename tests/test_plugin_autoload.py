"""``libfrpt_plugins_autoload.so``: loading it registers ``libfrpt_plugins.so`` (beside it) through TensorRT's plugin
registry, in each host that only dlopens a plugin library; every failure is one line and a status, never a crash.

Each host runs in a fresh process against the stub libnvinfer of ``plugins/tests/stubNvinfer.cpp`` (its recording
registry implements ``loadLibrary`` as TensorRT documents it), with the CMake-built libraries of
``tests/test_plugin_contract.py`` (shared builds, ``sampler_testkit``):

* **Triton's TensorRT backend**: Triton core dlopens the backend -- and so its NEEDED libnvinfer -- with
  ``RTLD_NOW | RTLD_LOCAL`` (``core/src/shared_library.cc``), then the backend dlopens each
  ``--backend-config=tensorrt,plugins=`` library the same way (``tensorrt_backend/src/shared_library.cc``): the stub
  is loaded with local scope (and, for the brief's variant, global), then the autoload library with those flags.
* **LD_PRELOAD**: the autoload library is preloaded into a new process before any libnvinfer; it loads
  ``libnvinfer.so.<major>`` from ``LD_LIBRARY_PATH`` itself, and the host's later load of that soname shares it.
* **Polygraphy** ``--plugins``: Polygraphy's own ``LoadPlugins`` loader (``ctypes.CDLL``), with TensorRT imported
  first, and before TensorRT is imported (its ``run`` script loads plugins before the engine loader imports it).
* **A Triton model repository** written by ``frpt-export triton`` for a plugin engine: its copy of the autoload
  library, loaded as Triton's backend does, registers the repository's copy of the plugin library.
* Double loads: the same library again (path, symlink), and ``frpt_runtime``'s loader before or after it.
* Failures: no libnvinfer reachable, no ``libfrpt_plugins.so`` beside it, a library that is not the plugin, a
  TensorRT major mismatch of either library, a second copy; and the runtime's loader afterwards in the same process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sampler_testkit as kit
from runtime_toys import make_toy_onnx, toy_bundle, toy_plan

from frpt_runtime.contract import PLUGIN_NAMESPACE, PLUGIN_OP, PLUGIN_VERSION

AUTOLOAD = "libfrpt_plugins_autoload.so"
PLUGIN = "libfrpt_plugins.so"
PREFIX = "frpt_plugins_autoload: "
# frpt::kAUTOLOAD_* (plugins/frptPluginsAutoload.h)
REGISTERED, NO_TENSORRT, NO_PLUGIN_LIBRARY, TENSORRT_MISMATCH, OTHER_COPY = 0, 1, 2, 3, 4

_DIRS = kit.tensorrt_include_dirs()
_IDS = [p.parent.name for p in _DIRS]
pytestmark = [
    *kit.plugin_build_skips(),
    pytest.mark.skipif(kit.cuda_include_dir() is None, reason="no CUDA include folder (NvInferRuntime.h needs it)"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """include dir -> (CMake build dir with both libraries, stub libnvinfer.so.<major>), shared per session."""

    def make(include_dir: Path) -> tuple[Path, Path]:
        try:
            out = kit.shared_build(kit.build_plugin_libraries, tmp_path_factory, include_dir)
            stub = kit.shared_build(kit.build_stub_nvinfer, tmp_path_factory, include_dir)
        except subprocess.CalledProcessError as e:
            pytest.fail(f"build against {include_dir} failed:\n{(e.output or e.stderr or '')[-6000:]}")
        return out, stub

    return make


# The host, in a fresh interpreter. spec: "before" / "after" libraries the host loads around the plugin load (its
# TensorRT), "opener" of the autoload libraries ("dlopen": Triton's flags; "polygraphy": its LoadPlugins; "preloaded":
# LD_PRELOAD did it), "nvinfer" the loaded libnvinfer whose registry is read (RTLD_NOLOAD: it must already be there),
# "runtime" plugin libraries then handed to frpt_runtime's loader ("runtime_first": before the autoload library).
_HOST = r"""
import ctypes, json, os, sys
spec = json.loads(sys.argv[1])
mode = {"local": os.RTLD_NOW | os.RTLD_LOCAL, "global": os.RTLD_NOW | os.RTLD_GLOBAL}
for path, scope in spec.get("before", []):
    ctypes.CDLL(path, mode=mode[scope])
if spec.get("runtime_first"):
    from frpt_runtime.plugin_library import load_plugin_library
    for path in spec["runtime_first"]:
        load_plugin_library(path)
if spec["opener"] == "polygraphy":
    from polygraphy.backend.trt import LoadPlugins
    LoadPlugins(plugins=spec["plugins"])()
elif spec["opener"] == "dlopen":
    for path in spec["plugins"]:
        ctypes.CDLL(path, mode=mode["local"])  # tensorrt_backend's OpenLibraryHandle: dlopen(RTLD_NOW | RTLD_LOCAL)
for path, scope in spec.get("after", []):
    ctypes.CDLL(path, mode=mode[scope])
result = {"autoload": [], "runtime": []}
for path in spec["plugins"]:
    lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)  # the loaded object itself
    lib.frptAutoloadMessage.restype = ctypes.c_char_p
    result["autoload"].append([lib.frptAutoloadStatus(), lib.frptAutoloadMessage().decode()])
if spec.get("runtime"):
    from frpt_runtime.errors import FrptError
    from frpt_runtime.plugin_library import load_plugin_library
    for path in spec["runtime"]:
        try:
            result["runtime"].append(load_plugin_library(path))
        except FrptError as e:
            result["runtime"].append(str(e))
if spec.get("nvinfer"):
    stub = ctypes.CDLL(spec["nvinfer"], mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    stub.stubLoadedPath.restype = stub.stubLogged.restype = ctypes.c_char_p
    from frpt_runtime.contract import PLUGIN_NAMESPACE, PLUGIN_OP, PLUGIN_VERSION  # the creator's identity
    identity = (PLUGIN_OP.encode(), PLUGIN_VERSION.encode(), PLUGIN_NAMESPACE.encode())
    result["has_creator"] = stub.stubHasCreator(*identity)
    result["nb_creators"] = stub.stubNbCreators()
    result["load_library_paths"] = [stub.stubLoadedPath(i).decode() for i in range(stub.stubNbLoaded())]
    result["logged"] = [stub.stubLogged(i).decode() for i in range(stub.stubNbLogged())]
print(json.dumps(result))
"""


def run_host(spec: dict, env: dict[str, str] | None = None) -> tuple[dict, list[str]]:
    """The host in a fresh interpreter: its result and the stderr lines that mention the autoload library."""
    done = subprocess.run(
        [sys.executable, "-c", _HOST, json.dumps(spec)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), [
        line for line in done.stderr.splitlines() if "frpt_plugins_autoload" in line
    ]


def clean_env(**changes: str) -> dict[str, str]:
    """This environment without LD_PRELOAD / LD_LIBRARY_PATH, plus ``changes``."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "LD_LIBRARY_PATH")}
    return {**env, **changes}


def pair_in(folder: Path, autoload_build: Path, plugin_build: Path | None) -> Path:
    """Copies of an autoload library (and a plugin library) in ``folder``; returns the autoload's path."""
    folder.mkdir(parents=True)
    shutil.copy(autoload_build / AUTOLOAD, folder / AUTOLOAD)
    if plugin_build is not None:
        shutil.copy(plugin_build / PLUGIN, folder / PLUGIN)
    return folder / AUTOLOAD


def assert_registered(result: dict, out: Path, stub: Path, include_dir: Path) -> None:
    """Registered from the plugin library beside the autoload library, through the stub's loadLibrary, reported once
    through TensorRT's logger."""
    (status, message), *_ = result["autoload"]
    assert status == REGISTERED, message
    major, minor = kit.header_version(include_dir)
    plugin = (out / PLUGIN).resolve()
    identity = f"{PLUGIN_OP}/{PLUGIN_VERSION}/{PLUGIN_NAMESPACE}"  # frpt_runtime.contract's
    assert message == f"{PREFIX}registered {identity} from {plugin} with TensorRT {major}.{minor} ({stub.resolve()})"
    assert result["has_creator"] == 1 and result["nb_creators"] == 1
    assert result["load_library_paths"] == [str(plugin)], "registered through IPluginRegistry::loadLibrary"
    assert result["logged"] == [message], "reported through TensorRT's logger (getLogger), at kINFO"


@pytest.mark.parametrize("scope", ["local", "global"])
@pytest.mark.parametrize("include_dir", _DIRS, ids=_IDS)
def test_triton_backend_host(built, include_dir: Path, scope: str) -> None:
    out, stub = built(include_dir)
    spec = {"before": [[str(stub), scope]], "opener": "dlopen", "plugins": [str(out / AUTOLOAD)], "nvinfer": str(stub)}
    result, lines = run_host(spec, clean_env())
    assert_registered(result, out, stub, include_dir)
    assert lines == [], "success is silent on stderr"


@pytest.mark.parametrize("include_dir", _DIRS, ids=_IDS)
def test_ld_preload_host(built, include_dir: Path) -> None:
    out, stub = built(include_dir)
    env = clean_env(LD_PRELOAD=str(out / AUTOLOAD), LD_LIBRARY_PATH=str(stub.parent))
    spec = {"opener": "preloaded", "plugins": [str(out / AUTOLOAD)], "nvinfer": stub.name}  # by soname, as NEEDED
    result, lines = run_host(spec, env)
    assert_registered(result, out, stub, include_dir)
    assert lines == []
    other = subprocess.run(["/bin/sh", "-c", "exit 7"], env=env, capture_output=True, text=True, timeout=60)
    assert (other.returncode, other.stderr) == (7, ""), "any other process under the same LD_PRELOAD is unaffected"


@pytest.mark.parametrize("tensorrt_first", [True, False], ids=["tensorrt-imported-first", "plugins-first"])
@pytest.mark.parametrize("include_dir", _DIRS, ids=_IDS)
def test_polygraphy_host(built, include_dir: Path, tensorrt_first: bool) -> None:
    pytest.importorskip("polygraphy.backend.trt", reason="polygraphy not installed (the export extra pins it)")
    out, stub = built(include_dir)
    loads = [[str(stub), "local"]]  # `import tensorrt`: the bindings load libnvinfer with local scope
    spec = {"opener": "polygraphy", "plugins": [str(out / AUTOLOAD)], "nvinfer": stub.name}
    spec.update({"before": loads} if tensorrt_first else {"after": [[stub.name, "local"]]})
    env = clean_env() if tensorrt_first else clean_env(LD_LIBRARY_PATH=str(stub.parent))
    result, lines = run_host(spec, env)
    assert_registered(result, out, stub, include_dir)
    assert lines == []


def _failed(result: dict, lines: list[str], status: int, match: str, through_logger: bool) -> str:
    """The one reported line: the status, the query's message, exactly one stderr line, nothing registered."""
    (got, message), *_ = result["autoload"]
    assert got == status and re.search(match, message), message
    assert "\n" not in message and message.startswith(PREFIX)
    assert lines == [("[stub libnvinfer] " if through_logger else "") + message], lines
    if "nb_creators" in result:
        assert result["nb_creators"] == 0 and result["load_library_paths"] == []
        assert result["logged"] == ([message] if through_logger else [])
    return message


def _libnvinfer_on_default_path(major: int) -> bool:
    code = f"import ctypes; ctypes.CDLL('libnvinfer.so.{major}')"
    return subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True).returncode == 0


@pytest.mark.parametrize("include_dir", _DIRS, ids=_IDS)
def test_no_libnvinfer_reachable(built, include_dir: Path) -> None:
    major = kit.header_version(include_dir)[0]
    if _libnvinfer_on_default_path(major):
        pytest.skip(f"this box has a real libnvinfer.so.{major} on the default library path")
    out, _ = built(include_dir)
    result, lines = run_host({"opener": "dlopen", "plugins": [str(out / AUTOLOAD)]}, clean_env())
    match = rf"no libnvinfer in this process and libnvinfer\.so\.{major} is not on the library path"
    message = _failed(result, lines, NO_TENSORRT, match, through_logger=False)
    assert "LD_LIBRARY_PATH" in message and "--backend-config=tensorrt,plugins=" in message
    preload = clean_env(LD_PRELOAD=str(out / AUTOLOAD))
    other = subprocess.run(["/bin/sh", "-c", "exit 7"], env=preload, capture_output=True, text=True, timeout=60)
    assert other.returncode == 7 and other.stderr.splitlines() == [message], "LD_PRELOAD: one line, the host runs"


@pytest.mark.parametrize("include_dir", _DIRS, ids=_IDS)
def test_plugin_library_missing_or_foreign_beside_it(built, include_dir: Path, tmp_path: Path) -> None:
    out, stub = built(include_dir)
    alone = pair_in(tmp_path / "alone", out, None)
    spec = {"before": [[str(stub), "local"]], "opener": "dlopen", "plugins": [str(alone)], "nvinfer": str(stub)}
    result, lines = run_host(spec, clean_env())
    message = _failed(result, lines, NO_PLUGIN_LIBRARY, rf"cannot load {PLUGIN} beside it \(", through_logger=True)
    assert "No such file" in message and "frpt-export build-plugin" in message
    foreign = pair_in(tmp_path / "foreign", out, None)
    shutil.copy(stub, foreign.with_name(PLUGIN))  # a shared library without the plugin library's exports
    result, lines = run_host({**spec, "plugins": [str(foreign)]}, clean_env())
    _failed(result, lines, NO_PLUGIN_LIBRARY, "is not the FRPT TensorRT plugin library", through_logger=True)


def _majors() -> list[tuple[Path, Path]]:
    """(built headers, running headers) pairs of different majors."""
    return [(a, b) for a in _DIRS for b in _DIRS if kit.header_version(a)[0] != kit.header_version(b)[0]]


@pytest.mark.skipif(len(_majors()) == 0, reason="needs TensorRT headers of two majors (e.g. 10.3 and 11.1)")
@pytest.mark.parametrize("pair", _majors(), ids=[f"{a.parent.name}-under-{b.parent.name}" for a, b in _majors()])
def test_tensorrt_major_mismatch(built, pair: tuple[Path, Path], tmp_path: Path) -> None:
    (built_out, _), (running_out, stub) = built(pair[0]), built(pair[1])
    (bmaj, bmin), (rmaj, rmin) = kit.header_version(pair[0]), kit.header_version(pair[1])
    spec = {"before": [[str(stub), "local"]], "opener": "dlopen", "plugins": [str(built_out / AUTOLOAD)]}
    result, lines = run_host({**spec, "nvinfer": str(stub)}, clean_env())
    running = f"but this process runs TensorRT {rmaj}.{rmin}"
    message = _failed(
        result, lines, TENSORRT_MISMATCH, f"{AUTOLOAD} was built against TensorRT {bmaj}.{bmin} {running}", False
    )
    assert f"--tensorrt-root <TensorRT {rmaj}.x prefix>" in message
    mixed = pair_in(tmp_path / "mixed", running_out, built_out)  # a current autoload beside an old plugin library
    result, lines = run_host({**spec, "plugins": [str(mixed)], "nvinfer": str(stub)}, clean_env())
    _failed(result, lines, TENSORRT_MISMATCH, f"{PLUGIN} was built against TensorRT {bmaj}.{bmin} {running}", True)


def test_second_copy_and_the_runtime_loader_after_it(built, tmp_path: Path) -> None:
    out, stub = built(_DIRS[0])
    first, second = pair_in(tmp_path / "a", out, out), pair_in(tmp_path / "b", out, out)
    spec = {"before": [[str(stub), "local"]], "opener": "dlopen", "plugins": [str(first), str(second)]}
    spec.update(nvinfer=str(stub), runtime=[str(first.with_name(PLUGIN)), str(second.with_name(PLUGIN))])
    result, lines = run_host(spec, clean_env())
    (ok, _), (status, message) = result["autoload"]
    assert ok == REGISTERED and status == OTHER_COPY, result["autoload"]
    assert "already registered with TensorRT by another copy of the plugin library" in message
    assert lines == ["[stub libnvinfer] " + message] and result["nb_creators"] == 1
    assert result["load_library_paths"] == [str(first.with_name(PLUGIN).resolve())]
    # frpt_runtime in the same process: the copy the autoload registered is accepted, the other one named.
    assert result["runtime"][0] == str(first.with_name(PLUGIN).resolve())
    assert "another copy of the plugin library" in result["runtime"][1]


def _symbols(lib: Path, which: str) -> set[str]:
    out = subprocess.run(["nm", "-D", which, str(lib)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


@pytest.mark.skipif(not (shutil.which("nm") and shutil.which("readelf")), reason="needs binutils nm and readelf")
@pytest.mark.parametrize("include_dir", _DIRS, ids=_IDS)
def test_exports_only_the_query_and_links_no_libnvinfer(built, include_dir: Path) -> None:
    lib = built(include_dir)[0] / AUTOLOAD
    assert _symbols(lib, "--defined-only") == {"frptAutoloadStatus", "frptAutoloadMessage"}
    dynamic = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic)
    assert needed and not [n for n in needed if "nvinfer" in n], needed
    assert not {"getPluginRegistry", "getInferLibVersion", "getLogger"} & _symbols(lib, "--undefined-only")


@pytest.mark.parametrize("include_dir", _DIRS, ids=_IDS)
def test_double_load_is_harmless(built, include_dir: Path, tmp_path: Path) -> None:
    """The same autoload library opened again (by its path and through a symlink), and the runtime's loader before
    it: one registration, one loadLibrary call, every status REGISTERED."""
    out, stub = built(include_dir)
    link = tmp_path / "link" / AUTOLOAD
    link.parent.mkdir()
    link.symlink_to(out / AUTOLOAD)
    plugins = [str(out / AUTOLOAD), str(out / AUTOLOAD), str(link)]
    spec = {"before": [[str(stub), "local"]], "opener": "dlopen", "plugins": plugins, "nvinfer": str(stub)}
    result, lines = run_host({**spec, "runtime": [str(out / PLUGIN)]}, clean_env())
    assert_registered(result, out, stub, include_dir)
    assert len({tuple(entry) for entry in result["autoload"]}) == 1, "one initialiser run: the same object"
    assert result["runtime"] == [str((out / PLUGIN).resolve())] and lines == []
    result, lines = run_host({**spec, "runtime_first": [str(out / PLUGIN)]}, clean_env())
    (status, message), *_ = result["autoload"]
    assert status == REGISTERED and result["nb_creators"] == 1, message
    assert result["load_library_paths"] == [str((out / PLUGIN).resolve())] and lines == []


@pytest.mark.parametrize("include_dir", _DIRS, ids=_IDS)
def test_triton_repository_libraries_register(built, include_dir: Path, tmp_path: Path) -> None:
    """``frpt-export triton`` on a plugin engine, then Triton's load of the repository's autoload library (the
    ``--backend-config=tensorrt,plugins=`` path it prints): the plugin registers from the repository's own copy."""
    pytest.importorskip("onnx", reason="the toy plan's bundle is built from an ONNX graph (export extra)")
    from frpt_export.triton_repo import TritonJob, write_triton_repository

    out, stub = built(include_dir)
    major, minor = kit.header_version(include_dir)
    plan = toy_plan(tmp_path, plugin_required=True, trt_version=f"{major}.{minor}.0")
    toy_bundle(tmp_path / "model.ref.npz", make_toy_onnx(tmp_path / "model.onnx"), tmp_path / "model.onnx")
    report = write_triton_repository(TritonJob(plan, tmp_path / "repo", name="frpt", plugin_lib=out / PLUGIN))
    model_dir = tmp_path / "repo" / "frpt"
    assert report.serve_command.endswith(f"--backend-config=tensorrt,plugins=/models/frpt/{AUTOLOAD}")
    spec = {"before": [[str(stub), "local"]], "opener": "dlopen", "plugins": [str(model_dir / AUTOLOAD)]}
    result, lines = run_host({**spec, "nvinfer": str(stub)}, clean_env())
    assert_registered(result, model_dir, stub, include_dir)
    assert lines == []
