"""One place checks the type and range of every field read from a file (issue 9, item 11): export metadata,
engine sidecars, bundles, manifests and journals all fail in one line, exit 2, never with a traceback."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from runtime_toys import (
    TOY_SIZE,
    make_image_folder,
    make_toy_onnx,
    toy_bundle,
    toy_metadata,
    toy_plan,
    write_embed_output,
)
from typer.testing import CliRunner

from frpt_runtime.backends import create_backend
from frpt_runtime.cli import embed_app, verify_app
from frpt_runtime.contract import sidecar_path_for
from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import FRPTConfig
from frpt_runtime.fields import FieldError, check_fields, integer, number, optional, sequence, string
from frpt_runtime.journal import PARTIAL_DIR, ChunkRecord
from frpt_runtime.manifest import read_embeddings


def test_checks_are_strict_about_types() -> None:
    spec = {"n": integer(1, 8), "x": number(0, 1, low_open=True), "s": optional(string()), "v": sequence(integer())}
    check_fields({"n": 3, "x": 1, "s": None, "v": [1, 2]}, spec)
    for bad, message in [
        ({"n": 3.0}, "n must be an integer in [1, 8], got 3.0"),
        ({"n": True}, "n must be an integer in [1, 8], got True"),
        ({"n": "3"}, "n must be an integer in [1, 8], got '3'"),
        ({"x": 0}, "x must be a number in (0, 1], got 0"),
        ({"x": math.nan}, "x must be a number in (0, 1], got nan"),
        ({"s": 5}, "s must be null or a string, got 5"),
        ({"v": [1, "2"]}, "v must be a list of values, each an integer, got [1, '2']"),
    ]:
        with pytest.raises(FieldError) as info:
            check_fields({**{"n": 3, "x": 1, "s": None, "v": []}, **bad}, spec)
        assert str(info.value) == message
    with pytest.raises(FieldError, match="lacks the fields n, x"):
        check_fields({"s": None, "v": []}, spec)


def _edited_config(tmp_path: Path, **changes: object) -> Path:
    """The toy export with its frpt.config metadata edited (as a careless user, or an attacker, would)."""
    config = FRPTConfig(input_size=TOY_SIZE, crop_pct=1.0).to_dict()
    config.update(changes)
    path = tmp_path / "edited.onnx"
    weights = make_toy_onnx(path, metadata={**toy_metadata(), "frpt.config": json.dumps(config)})
    toy_bundle(path.with_name("edited.ref.npz"), weights, path)
    return path


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"crop_pct": 0}, "crop_pct must be a number in (0, 1], got 0"),
        ({"crop_pct": 2.0}, "crop_pct must be a number in (0, 1], got 2.0"),
        ({"input_size": float(TOY_SIZE)}, f"input_size must be an integer in [1, 4096], got {float(TOY_SIZE)}"),
        ({"decoder": "draft"}, "decoder must be one of exact, fast, got 'draft'"),
        ({"decoder": None}, "decoder must be one of exact, fast, got None"),
    ],
)
def test_bad_metadata_is_one_line_for_verify_and_embed_alike(tmp_path: Path, changes: dict, message: str) -> None:
    """``input_size: 64.0`` used to pass frpt-verify while frpt-embed crashed; both refuse it now."""
    path = _edited_config(tmp_path, **changes)
    runner = CliRunner()
    verify = runner.invoke(verify_app, [str(path)])
    folder = make_image_folder(tmp_path / "images", good=2)
    embed = runner.invoke(embed_app, [str(folder), "--onnx", str(path), "-o", str(tmp_path / "out")])
    for result in (verify, embed):
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
        assert message in result.stderr and "frpt.config metadata" in result.stderr


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"min_batch": "1"}, "min_batch must be an integer >= 1, got '1'"),
        ({"max_batch": None}, "max_batch must be an integer >= 1, got None"),
        ({"plugin_required": "no"}, "plugin_required must be true or false, got 'no'"),
        ({"onnx_sha256": "abc"}, "onnx_sha256 must be a sha256 hex digest, got 'abc'"),
    ],
)
def test_bad_sidecar_fields_are_one_line(tmp_path: Path, changes: dict, message: str) -> None:
    plan = toy_plan(tmp_path)
    sidecar = sidecar_path_for(plan)
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), **changes}))
    with pytest.raises(FrptError) as info:
        create_backend(engine=plan).activate()  # refused from the sidecar, before TensorRT is imported
    assert message in str(info.value) and "\n" not in str(info.value) and "rebuild the engine" in str(info.value)


def test_bad_bundle_meta_is_one_line(tmp_path: Path) -> None:
    model = tmp_path / "toy.onnx"
    weights = make_toy_onnx(model)
    path = toy_bundle(tmp_path / "toy.ref.npz", weights, model)
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    meta = json.loads(str(arrays["meta"]))
    for key, value, message in [
        ("precision", "fp8", "precision must be one of fp32, fp16, got 'fp8'"),
        ("model_sha256", None, "model_sha256 must be a sha256 hex digest, got None"),
        ("thresholds", {"fp32_max_abs": "1e-4"}, "thresholds must be an object of"),
    ]:
        np.savez(path, **{**arrays, "meta": np.array(json.dumps({**meta, key: value}))})
        result = CliRunner().invoke(verify_app, [str(model)])
        assert result.exit_code == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    legacy = {k: v for k, v in meta.items() if k not in ("model_sha256", "precision", "lowering")}
    np.savez(path, **{**arrays, "meta": np.array(json.dumps(legacy))})
    result = CliRunner().invoke(verify_app, [str(model)])
    assert result.exit_code == 2 and "lacks the fields model_sha256, precision, lowering" in result.stderr


def test_bad_manifest_fields_are_one_line(tmp_path: Path) -> None:
    write_embed_output(tmp_path, ["a/1.png", "b/1.png"], np.eye(2, dtype=np.float32), batch="2")
    with pytest.raises(FrptError, match="manifest.json: batch must be an integer >= 1, got '2': run frpt-embed"):
        read_embeddings(tmp_path)
    write_embed_output(tmp_path, ["a/1.png", "b/1.png"], np.eye(2, dtype=np.float32), count=3)
    with pytest.raises(FrptError, match="count 3 but 2 images listed"):
        read_embeddings(tmp_path)


def test_bad_journal_fields_are_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    model = tmp_path / "toy.onnx"
    make_toy_onnx(model)
    folder = make_image_folder(tmp_path / "images")
    out = tmp_path / "out"
    harness = [sys.executable, str(Path(__file__).with_name("crash_harness.py")), "fsync:journal.jsonl:2"]
    args = [str(folder), "--onnx", str(model), "-o", str(out), "-b", "4"]
    killed = subprocess.run([*harness, "frpt_runtime.cli:embed_app", *args], capture_output=True, timeout=180)
    assert killed.returncode == -9
    journal = out / PARTIAL_DIR / "journal.jsonl"
    journal.write_bytes(journal.read_bytes().replace(b'"chunk":1', b'"chunk":"1"'))
    result = CliRunner().invoke(embed_app, [*args, "--resume"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "has a corrupt journal: drop --resume to start over" in result.stderr
    with pytest.raises(FieldError, match="chunk must be an integer >= 0, got '1'"):
        ChunkRecord.from_line(journal.read_bytes().splitlines()[1])
