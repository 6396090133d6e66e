"""The plugin library loader (``frpt_runtime.plugin_library``): search order, the ABI guard, errors, torch-free import.

Stand-ins compiled with g++ into a temp dir: a library with the plugin library's exports (``getCreators`` marks it
registered, like the real one; ``frptPluginTensorRTVersion`` says 10.3) and one without them. A fake TensorRT module
plays the Python bindings: its registry's ``load_library`` calls the library's ``getCreators`` as TensorRT's
``IPluginRegistry::loadLibrary`` does. ``tests/test_plugin_contract.py`` runs the real library against a stub
libnvinfer loaded with local scope.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from frpt_runtime import plugin_library
from frpt_runtime.errors import FrptError
from frpt_runtime.plugin_library import ENV_VAR, LIBRARY_NAME, find_plugin_library, load_plugin_library

FAKE_PLUGIN = """
#include <cstdint>
static int32_t registered = 0;
extern "C" void* getCreators(int32_t& n) { n = 0; registered = 1; return nullptr; }
extern "C" int32_t frptPluginRegistered() { return registered; }
extern "C" int32_t frptPluginTensorRTVersion() { return 100300; }
extern "C" int32_t frptLoadIntoRegistry(void*, char const*) { return 1; }
"""


def _compile(src: str, out: Path) -> Path:
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler (g++/c++) on PATH to build test shared objects")
    source = out.with_suffix(".cpp")
    source.write_text(src)
    subprocess.run([cxx, "-shared", "-fPIC", str(source), "-o", str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("libs")
    other = _compile('extern "C" int somethingElse() { return 1; }\n', d / "libother.so")
    text = d / "libtext.so"
    text.write_text("not an ELF file\n")
    return {"plugin": _compile(FAKE_PLUGIN, d / LIBRARY_NAME), "other": other, "text": text}


@pytest.fixture
def libs(built: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """Fresh copies per test (a copy at another path is another object for dlopen: its own 'registered' state)."""
    good = tmp_path / "good" / LIBRARY_NAME
    good.parent.mkdir()
    shutil.copy(built["plugin"], good)
    return {**built, "good": good}


class FakeRegistry:
    """What the bindings' ``trt.get_plugin_registry()`` offers: ``load_library`` (dlopen + getCreators + register)."""

    def __init__(self, refuse: bool = False, holds_creator: bool = False) -> None:
        self.refuse, self.holds_creator, self.loaded = refuse, holds_creator, []

    def load_library(self, path: str) -> object | None:
        self.loaded.append(path)
        if self.refuse:
            return None
        ctypes.CDLL(path).getCreators(ctypes.byref(ctypes.c_int32()))
        self.holds_creator = True
        return object()

    def get_creator(self, name: str, version: str, namespace: str) -> object | None:
        assert (name, version, namespace) == ("InhomogeneousSample", "1", "frpt")
        return object() if self.holds_creator else None


def fake_trt(version: str = "10.3.0.26", registry: FakeRegistry | None = None) -> SimpleNamespace:
    registry = registry or FakeRegistry()
    return SimpleNamespace(__name__="tensorrt", __version__=version, get_plugin_registry=lambda: registry)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No env var, empty default locations and nothing registered yet, unless a test sets them."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    defaults = [tmp_path / "pkg" / LIBRARY_NAME, tmp_path / "plugins" / "build" / LIBRARY_NAME]
    monkeypatch.setattr(plugin_library, "default_locations", lambda: defaults)
    monkeypatch.setattr(plugin_library, "_loaded", {})


def test_explicit_path_registers_through_the_registry_and_is_idempotent(libs: dict[str, Path]) -> None:
    registry = FakeRegistry()
    trt = fake_trt(registry=registry)
    loaded = load_plugin_library(libs["good"], trt=trt)
    assert loaded == str(libs["good"].resolve())
    assert registry.loaded == [loaded]
    assert load_plugin_library(str(libs["good"]), trt=trt) == loaded
    assert registry.loaded == [loaded], "loading the same file again is a no-op"
    assert find_plugin_library(libs["good"]) == libs["good"].resolve()


def test_env_var_is_used_and_explicit_path_wins(libs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(libs["good"]))
    assert load_plugin_library(trt=fake_trt()) == str(libs["good"].resolve())
    monkeypatch.setattr(plugin_library, "_loaded", {})
    with pytest.raises(FrptError, match="is not the FRPT"):
        load_plugin_library(libs["other"], trt=fake_trt())


def test_default_locations_in_order(libs: dict[str, Path]) -> None:
    assert find_plugin_library() is None
    build = plugin_library.default_locations()[1]
    build.parent.mkdir(parents=True)
    shutil.copy(libs["good"], build)
    assert find_plugin_library() == build.resolve()
    packaged = plugin_library.default_locations()[0]
    packaged.parent.mkdir(parents=True)
    shutil.copy(libs["good"], packaged)
    assert load_plugin_library(trt=fake_trt()) == str(packaged.resolve())


def test_nothing_found_lists_every_place_tried() -> None:
    with pytest.raises(FrptError) as err:
        load_plugin_library()
    message = str(err.value)
    assert "\n" not in message
    for place in plugin_library.default_locations():
        assert str(place) in message
    assert ENV_VAR in message and "cmake" in message


@pytest.mark.parametrize("via_env", [False, True], ids=["argument", "env"])
def test_missing_explicit_choice_is_an_error_not_a_fallback(
    libs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, via_env: bool
) -> None:
    build = plugin_library.default_locations()[1]
    build.parent.mkdir(parents=True)
    shutil.copy(libs["good"], build)
    missing = tmp_path / "nowhere" / LIBRARY_NAME
    if via_env:
        monkeypatch.setenv(ENV_VAR, str(missing))
    with pytest.raises(FrptError, match=f"{missing}.*{'FRPT_PLUGIN_LIB' if via_env else 'given path'}"):
        load_plugin_library(None if via_env else missing)
    assert find_plugin_library(None if via_env else missing) is None


def test_wrong_files_give_clear_errors(libs: dict[str, Path]) -> None:
    with pytest.raises(FrptError, match=r"cannot load TensorRT plugin library .*libtext\.so"):
        load_plugin_library(libs["text"])
    with pytest.raises(FrptError, match=r"libother\.so is not the FRPT TensorRT plugin library .*getCreators"):
        load_plugin_library(libs["other"])


@pytest.mark.parametrize("running", ["11.1.0", "8.6.1"])
def test_other_tensorrt_major_is_refused_before_the_registry_sees_it(libs: dict[str, Path], running: str) -> None:
    registry = FakeRegistry()
    with pytest.raises(FrptError) as err:
        load_plugin_library(libs["good"], trt=fake_trt(running, registry))
    message = str(err.value)
    assert "\n" not in message
    assert f"built against TensorRT 10.3 but this process runs TensorRT {running[:-2]}" in message
    assert "cmake -S plugins -B plugins/build -DTensorRT_ROOT=" in message
    assert registry.loaded == []


def test_other_minor_of_the_same_major_is_accepted(libs: dict[str, Path]) -> None:
    assert load_plugin_library(libs["good"], trt=fake_trt("10.8.0.43")) == str(libs["good"].resolve())


def test_second_copy_from_another_path_is_refused_naming_both(libs: dict[str, Path], tmp_path: Path) -> None:
    first = load_plugin_library(libs["good"], trt=fake_trt())
    second = tmp_path / "elsewhere" / LIBRARY_NAME
    second.parent.mkdir()
    shutil.copy(libs["good"], second)
    with pytest.raises(FrptError) as err:
        load_plugin_library(second, trt=fake_trt())
    assert "another copy" in str(err.value) and first in str(err.value) and str(second.resolve()) in str(err.value)


def test_creator_registered_by_someone_else_is_named(libs: dict[str, Path]) -> None:
    registry = FakeRegistry(holds_creator=True)
    with pytest.raises(FrptError, match="already registered with TensorRT by another copy"):
        load_plugin_library(libs["good"], trt=fake_trt(registry=registry))
    assert registry.loaded == []


def test_registry_refusal_is_an_error(libs: dict[str, Path]) -> None:
    with pytest.raises(FrptError, match="did not register .*load_library failed"):
        load_plugin_library(libs["good"], trt=fake_trt(registry=FakeRegistry(refuse=True)))


def test_module_without_plugin_registry_is_refused(libs: dict[str, Path]) -> None:
    rtx = SimpleNamespace(__name__="tensorrt_rtx", __version__="1.7.1")
    with pytest.raises(FrptError, match="tensorrt_rtx.*no plugin registry"):
        load_plugin_library(libs["good"], trt=rtx)


def test_without_module_and_without_libnvinfer_says_so(libs: dict[str, Path]) -> None:
    if ctypes.util.find_library("nvinfer") is not None or plugin_library._process_libnvinfer() is not None:
        pytest.skip("a libnvinfer is installed here (this checks the message of a box without TensorRT)")
    with pytest.raises(FrptError, match=r"no TensorRT in this process and no libnvinfer\.so\.10 .*trt=tensorrt"):
        load_plugin_library(libs["good"])


def test_import_is_torch_free() -> None:
    code = "import sys, frpt_runtime.plugin_library; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
