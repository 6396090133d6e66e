"""The distribution as a user gets it: ``python -m build --no-isolation`` with setuptools at the declared floor
(in a throwaway venv), ``twine check --strict``, the wheel's metadata and plugin sources, an sdist that holds the
test suite (and runs it), and ``frpt-export build-plugin`` from the installed wheel, not the checkout."""

from __future__ import annotations

import email
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging_kit import REPO, build_floor, clean_env, make_venv, pinned, pip

pytestmark = pytest.mark.slow

# What the wheel carries of plugins/ (setup.py SHIPPED): the CMake project as CMake builds it, with its README.
_TOP = ("CMakeLists.txt", "README.md", "*.h", "*.cpp", "*.cu", "*.map")
WHEEL_PLUGIN_FILES = [
    *sorted(p.relative_to(REPO / "plugins").as_posix() for pattern in _TOP for p in (REPO / "plugins").glob(pattern)),
    "tests/pluginContractTest.cpp",
    "tests/recordingRegistry.h",
    "tests/sampleTestInputs.h",
]
# Folders the sdist carries whole (MANIFEST.in), and single files beside them.
SDIST_TREES = ("tests", "plugins", "scripts", "benchmarks", "docs", ".ci")
SDIST_FILES = ("LICENSE", "README.md", "constraints.txt", "pyproject.toml", "setup.py", "MANIFEST.in")
_IGNORED_PARTS = {"__pycache__", "build", ".pytest_cache"}


def _tree(root: Path, folder: str) -> set[str]:
    """Files under ``root/folder`` as the repository holds them (caches and build folders left out)."""
    base = root / folder
    return {
        p.relative_to(root).as_posix()
        for p in base.rglob("*")
        if p.is_file() and not _IGNORED_PARTS & set(p.relative_to(base).parts) and p.suffix not in {".pyc", ".so"}
    }


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """sdist + wheel built by ``python -m build --no-isolation`` in a venv holding setuptools at the floor."""
    root = tmp_path_factory.mktemp("dist")
    bin_dir = make_venv(sys.executable, root / "venv")
    pip(bin_dir, f"setuptools=={build_floor()}", pinned("build"), pinned("packaging"), pinned("pyproject_hooks"))
    command = [str(bin_dir / "python"), "-m", "build", "--no-isolation", "--outdir", str(root / "out"), str(REPO)]
    done = subprocess.run(command, capture_output=True, text=True, env=clean_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sdist,) = (root / "out").glob("*.tar.gz")
    (wheel,) = (root / "out").glob("*.whl")
    versions = subprocess.run(
        [str(bin_dir / "python"), "-c", "import setuptools; print(setuptools.__version__)"],
        capture_output=True,
        text=True,
    )
    return {"sdist": sdist, "wheel": wheel, "root": root, "setuptools": Path(versions.stdout.strip())}


def test_builds_with_setuptools_at_the_declared_floor(dist: dict[str, Path]) -> None:
    assert str(dist["setuptools"]) == build_floor() == "77.0.3"
    assert dist["wheel"].name == "frpt_toolkit-0.1.0-py3-none-any.whl"


def test_twine_check_strict_passes(dist: dict[str, Path]) -> None:
    twine = Path(sys.executable).with_name("twine")
    if not twine.is_file():
        pytest.skip("twine not installed (the release extra pins it)")
    done = subprocess.run(
        [str(twine), "check", "--strict", str(dist["sdist"]), str(dist["wheel"])], capture_output=True
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def test_wheel_metadata_license_classifiers_urls_and_ranges(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        metadata = email.message_from_bytes(wheel.read("frpt_toolkit-0.1.0.dist-info/METADATA"))
        license_text = wheel.read("frpt_toolkit-0.1.0.dist-info/licenses/LICENSE").decode()
    assert license_text == (REPO / "LICENSE").read_text() and "Apache License" in license_text
    assert "Version 2.0, January 2004" in license_text and "END OF TERMS AND CONDITIONS" in license_text
    assert metadata["License-Expression"] == "Apache-2.0" and metadata.get_all("License-File") == ["LICENSE"]
    classifiers = metadata.get_all("Classifier")
    assert (
        "Programming Language :: Python :: 3.10" in classifiers and "Operating System :: POSIX :: Linux" in classifiers
    )
    assert not [c for c in classifiers if c.startswith("License ::")]  # PEP 639: the expression, not a classifier
    assert metadata.get_all("Project-URL") == ["Paper, https://arxiv.org/abs/2207.14465"]
    base = [r for r in metadata.get_all("Requires-Dist") if "extra ==" not in r]
    assert sorted(base) == ["numpy>=1.24", "pillow>=10", "tqdm>=4.66", "typer<1,>=0.13"]
    assert metadata["Requires-Python"] == ">=3.10"


def test_wheel_ships_the_plugin_cmake_project(dist: dict[str, Path]) -> None:
    prefix = "frpt_export/plugin_sources/"
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        shipped = {n.removeprefix(prefix): wheel.read(n) for n in wheel.namelist() if n.startswith(prefix)}
    assert sorted(shipped) == sorted(WHEEL_PLUGIN_FILES)
    assert all(shipped[name] == (REPO / "plugins" / name).read_bytes() for name in shipped)


def test_sdist_holds_what_the_test_suite_needs(dist: dict[str, Path], tmp_path: Path) -> None:
    with tarfile.open(dist["sdist"]) as sdist:
        sdist.extractall(tmp_path, filter="data")
    root = tmp_path / "frpt_toolkit-0.1.0"
    for folder in SDIST_TREES:
        assert _tree(root, folder) == _tree(REPO, folder), folder
    for name in SDIST_FILES:
        assert (root / name).read_bytes() == (REPO / name).read_bytes(), name
    for needed in ("tests/conftest.py", "tests/runtime_toys.py", "tests/sampler_testkit.py", "scripts/test.sh"):
        assert (root / needed).is_file(), needed
    # and the suite runs there: the sdist's own packages, not the checkout's
    tests = [
        "tests/test_metrics.py",
        "tests/test_architecture.py::test_checkout_imports_all_three_packages_without_install",
    ]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, env=clean_env(), timeout=300)
    assert done.returncode == 0 and " passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


def test_build_plugin_from_the_installed_wheel(dist: dict[str, Path], tmp_path: Path) -> None:
    roots = sorted(p.parent for p in REPO.glob(".trt/*/include") if (p / "NvInferRuntime.h").is_file())
    if not roots or shutil.which("nvcc") is None:
        pytest.skip("needs nvcc and TensorRT headers in .trt/*/include")
    site = tmp_path / "site"
    pip(Path(sys.executable).parent, "--no-deps", "--target", str(site), str(dist["wheel"]))
    env = {**clean_env(), "PYTHONPATH": str(site), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    code = "import sys; from frpt_export.cli import app; sys.argv[0] = 'frpt-export'; app()"
    args = ["build-plugin", "--tensorrt-root", str(roots[-1]), "--cuda-arch", "90", "--json"]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)["result"]
    assert result["source_dir"] == str(site / "frpt_export" / "plugin_sources")
    assert result["found_by_runtime"] and Path(result["library"]).is_file()
    assert Path(result["library"]).parent == tmp_path / "xdg" / "frpt-toolkit" / "plugins"
