"""Every C++ / CUDA source under ``plugins/`` is formatted by ``plugins/.clang-format`` with the pinned clang-format.

The pin (dev extra and ``constraints.txt``) matters: clang-format's output changes between releases. Fix a failure
with ``.venv/bin/clang-format -i <file>``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import sampler_testkit as kit

REPO = Path(__file__).resolve().parents[1]
SUFFIXES = {".h", ".cpp", ".cu"}


def _pinned_version() -> str:
    return re.search(r"^clang-format==(\S+)$", (REPO / "constraints.txt").read_text(), re.M).group(1)


def plugin_sources() -> list[Path]:
    """The C++ / CUDA files under plugins/ (build folders left out)."""
    return sorted(p for p in kit.PLUGIN_DIR.rglob("*") if p.suffix in SUFFIXES and "build" not in p.parts)


def test_plugin_sources_are_clang_formatted() -> None:
    tool = kit.dev_tool("clang-format")
    if tool is None:
        pytest.skip("clang-format not installed (the dev extra pins it: pip install -c constraints.txt -e .[dev])")
    version = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
    if f"version {_pinned_version()}" not in version:
        pytest.skip(f"{tool} is not the pinned clang-format {_pinned_version()} ({version.strip()})")
    files = plugin_sources()
    assert len(files) >= 7, files
    done = subprocess.run([tool, "--dry-run", "-Werror", *map(str, files)], capture_output=True, text=True)
    assert done.returncode == 0, f"not clang-formatted (run `{tool} -i <file>`):\n{done.stderr[-4000:]}"
