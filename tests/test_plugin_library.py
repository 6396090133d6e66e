"""The plugin library loader (``frpt_runtime.plugin_library``): search order, errors, torch-free import.

Real shared objects are compiled with g++ into a temp dir: one that exports ``getCreators`` (stands in for
``libfrpt_plugins.so``, which needs TensorRT headers to build) and one that does not.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from frpt_runtime import plugin_library
from frpt_runtime.errors import FrptError
from frpt_runtime.plugin_library import ENV_VAR, LIBRARY_NAME, find_plugin_library, load_plugin_library


def _compile(src: str, out: Path) -> Path:
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler (g++/c++) on PATH to build test shared objects")
    source = out.with_suffix(".cpp")
    source.write_text(src)
    subprocess.run([cxx, "-shared", "-fPIC", str(source), "-o", str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def libs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("libs")
    good = d / "good" / LIBRARY_NAME
    good.parent.mkdir()
    entry = 'extern "C" void* getCreators(int& n) { n = 0; return nullptr; }\n'
    _compile(entry + 'extern "C" int frptPluginRegistered() { return 1; }\n', good)
    unregistered = _compile(entry + 'extern "C" int frptPluginRegistered() { return 0; }\n', d / "libunreg.so")
    other = _compile('extern "C" int somethingElse() { return 1; }\n', d / "libother.so")
    text = d / "libtext.so"
    text.write_text("not an ELF file\n")
    return {"good": good, "unregistered": unregistered, "other": other, "text": text}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No env var and empty default locations unless a test sets them."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    defaults = [tmp_path / "pkg" / LIBRARY_NAME, tmp_path / "plugins" / "build" / LIBRARY_NAME]
    monkeypatch.setattr(plugin_library, "default_locations", lambda: defaults)


def test_explicit_path_loads_and_is_idempotent(libs: dict[str, Path]) -> None:
    loaded = load_plugin_library(libs["good"])
    assert loaded == str(libs["good"].resolve())
    assert load_plugin_library(str(libs["good"])) == loaded
    assert find_plugin_library(libs["good"]) == libs["good"].resolve()


def test_env_var_is_used_and_explicit_path_wins(libs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(libs["good"]))
    assert load_plugin_library() == str(libs["good"].resolve())
    with pytest.raises(FrptError, match="is not the FRPT"):
        load_plugin_library(libs["other"])


def test_default_locations_in_order(libs: dict[str, Path]) -> None:
    assert find_plugin_library() is None
    build = plugin_library.default_locations()[1]
    build.parent.mkdir(parents=True)
    shutil.copy(libs["good"], build)
    assert find_plugin_library() == build.resolve()
    packaged = plugin_library.default_locations()[0]
    packaged.parent.mkdir(parents=True)
    shutil.copy(libs["good"], packaged)
    assert load_plugin_library() == str(packaged.resolve())


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


def test_library_that_could_not_register_is_an_error(libs: dict[str, Path]) -> None:
    """Static registration found no libnvinfer: say so now, not as 'plugin not found' at parse time."""
    with pytest.raises(FrptError, match=r"libunreg\.so loaded but could not register .*libnvinfer"):
        load_plugin_library(libs["unregistered"])


def test_import_is_torch_free() -> None:
    code = "import sys, frpt_runtime.plugin_library; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
