"""The README's code runs as written: its Python API block on a toy export, its Triton query example compiles, and
every option its ``frpt-export triton`` / ``build-plugin`` lines use exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from runtime_toys import make_toy_onnx, toy_bundle

from frpt_export.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _blocks(section: str, language: str) -> list[str]:
    """The fenced ``language`` blocks under the ``## section`` heading."""
    body = README.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", body, re.S)


def test_python_api_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    toy_bundle(tmp_path / "model.ref.npz", make_toy_onnx(tmp_path / "model.onnx"), tmp_path / "model.onnx")
    (tmp_path / "photos").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(tmp_path / "photos" / f"{name}.jpg")
    monkeypatch.chdir(tmp_path)
    (code,) = _blocks("Python API", "python")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["embeddings"].shape == (2, 8) and namespace["embeddings"].dtype == np.float32
    assert np.load(tmp_path / "emb" / "embeddings.npy").shape == (3, 8)
    assert "embedded 3 images" in capsys.readouterr().out


def test_triton_query_example_compiles() -> None:
    (code,) = _blocks("Serving with Triton Inference Server", "python")
    compile(code, "README.md", "exec")
    assert 'InferInput("images"' in code and 'InferRequestedOutput("embedding")' in code


@pytest.mark.parametrize("sub", ["triton", "build-plugin"])
def test_readme_options_exist(sub: str) -> None:
    command = typer.main.get_command(app).commands[sub]
    known = {opt for param in command.params for opt in getattr(param, "opts", [])}
    lines = [line.split("#")[0] for line in README.splitlines() if line.lstrip().startswith(f"frpt-export {sub}")]
    used = {word.split("=")[0] for line in lines for word in shlex.split(line) if word.startswith("-")}
    assert lines and used and used <= known, used - known


def _shell_commands(section: str) -> list[str]:
    """The commands of the section's bash blocks, continuation lines joined and comments dropped."""
    text = "\n".join(_blocks(section, "bash")).replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in text.splitlines() if line.strip()]


@pytest.mark.slow
def test_polygraphy_commands_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Polygraphy block on fresh fp32 and fp16 exports (pretrained Lite0, 64 px)."""
    import subprocess
    import sys

    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx_graphsurgeon", reason="polygraphy check lint needs it (the export extra pins it)")
    from frpt.model import create_model
    from frpt_export.graph import LowerOptions
    from frpt_export.onnx_export import export_onnx
    from frpt_runtime.contract import Lowering, Precision
    from frpt_runtime.families.frpt import FRPTConfig

    torch.manual_seed(0)
    model = create_model(FRPTConfig(input_size=64, num_classes=3)).eval()
    for name, precision in (("model.onnx", Precision.fp32), ("model.fp16.onnx", Precision.fp16)):
        export_onnx(model, tmp_path / name, LowerOptions(Lowering.standard, precision))
    commands = _shell_commands("Checking with Polygraphy")
    assert [c.split()[:2] for c in commands] == [["polygraphy", "inspect"], ["polygraphy", "check"]] + [
        ["polygraphy", "run"]
    ] * 2
    polygraphy = Path(sys.executable).with_name("polygraphy")
    for command in commands:
        args = [str(polygraphy), *shlex.split(command)[1:]]
        done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
