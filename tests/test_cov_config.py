"""The coverage rule is what README's development section and pyproject.toml's comment say (issue 15)."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = [ROOT / "frpt", ROOT / "export" / "frpt_export", ROOT / "runtime" / "frpt_runtime"]
PRAGMAS = ("# pragma: gpu-only", "# pragma: full-tensorrt")


def _coverage() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["coverage"]


def test_only_cuda_memory_and_the_two_pragmas_are_excluded():
    config = _coverage()
    assert config["run"]["branch"] is True
    assert config["run"]["source"] == ["frpt", "frpt_export", "frpt_runtime"]
    assert config["run"]["omit"] == ["*/frpt_runtime/cuda_memory.py"]
    assert tuple(config["report"]["exclude_lines"]) == PRAGMAS  # replaces coverage's default "pragma: no cover"
    assert config["report"]["fail_under"] == 95


def test_product_code_uses_no_other_coverage_pragma():
    stray = []
    for folder in PRODUCT:
        for path in folder.rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"#\s*pragma", line) and not any(line.rstrip().endswith(p) for p in PRAGMAS):
                    stray.append(f"{path.relative_to(ROOT)}:{number}")
    assert stray == []


def test_readme_gives_the_coverage_and_mutation_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Development\n", 1)[1].split("\n## ", 1)[0]
    assert ".venv/bin/python -m pytest -q --cov --cov-report=term" in section
    assert "scripts/mutation.py" in section and "cuda_memory.py" in section
    assert all(pragma.removeprefix("# ") in section for pragma in PRAGMAS)
