"""Throwaway virtual environments for the packaging tests (not a test module).

``make_venv`` creates one with an interpreter's own ``venv``; ``pip`` installs into it and turns a registry that
cannot be reached into ``pytest.skip`` (any other pip failure fails the test); ``declared_floors`` reads the lowest
versions ``pyproject.toml`` allows for the runtime's install.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
_OFFLINE = re.compile(
    r"NewConnectionError|Temporary failure in name resolution|Network is unreachable|ConnectTimeout|"
    r"Failed to establish a new connection|Max retries exceeded|Could not fetch URL"
)


def clean_env() -> dict[str, str]:
    """This environment without the checkout on ``PYTHONPATH`` and without an active virtualenv."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def find_python(version: str) -> str | None:
    """An interpreter of ``version`` (``"3.10"``) that runs: under ``~/.pyenv/versions``, else on PATH (a pyenv
    shim whose version is not selected fails, so each candidate is tried)."""
    candidates = [str(p) for p in sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))]
    candidates += [found] if (found := shutil.which(f"python{version}")) else []
    for candidate in candidates:
        done = subprocess.run([candidate, "-c", "import venv"], capture_output=True, env=clean_env(), timeout=60)
        if done.returncode == 0:
            return candidate
    return None


def make_venv(python: str, path: Path) -> Path:
    """A fresh virtual environment of ``python`` at ``path``; returns its ``bin`` folder."""
    done = subprocess.run(
        [python, "-m", "venv", str(path)], capture_output=True, text=True, env=clean_env(), timeout=300
    )
    assert done.returncode == 0, done.stderr
    return path / "bin"


def pip(bin_dir: Path, *args: str, timeout: int = 900) -> None:
    """``pip install ARGS`` in a venv; skips the test when the package registry cannot be reached."""
    command = [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=clean_env(), timeout=timeout)
    if done.returncode != 0 and _OFFLINE.search(done.stdout + done.stderr):
        pytest.skip(f"package registry unreachable for `pip install {' '.join(args)}`")
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-4000:])


def build_floor() -> str:
    """The setuptools version ``[build-system].requires`` declares as its lower bound."""
    (requirement,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    (spec,) = [s for s in requirement.specifier if s.operator == ">="]
    return spec.version


def declared_floors(extra: str) -> list[str]:
    """``name==lowest`` for the base install and ``extra``: every ``>=`` bound ``pyproject.toml`` declares."""
    requirements = [*PYPROJECT["project"]["dependencies"], *PYPROJECT["project"]["optional-dependencies"][extra]]
    floors = []
    for text in requirements:
        requirement = Requirement(text)
        lows = [s.version for s in requirement.specifier if s.operator == ">="]
        assert len(lows) == 1, f"{text}: give the lowest supported version as one `>=` bound"
        floors.append(f"{requirement.name}=={lows[0]}")
    return floors


def pinned(name: str) -> str:
    """``name==version`` as ``constraints.txt`` pins it for this interpreter (the unmarked or matching line)."""
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        requirement = line.split(";")[0].strip()
        if requirement.lower().startswith(f"{name.lower()}=="):
            marker = line.split(";", 1)[1] if ";" in line else None
            if marker is None or Requirement(f"x; {marker}").marker.evaluate():
                return requirement
    raise AssertionError(f"{name} is not pinned in constraints.txt")
