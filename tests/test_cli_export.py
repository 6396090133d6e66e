"""`frpt-export` CLI: onnx / parity / trt through typer's CliRunner (small 64 px model, one export each)."""

import shutil
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from frpt.checkpoint import save_checkpoint
from frpt.model import create_model
from frpt_export import cli
from frpt_export.trt_build import BUILDER_HINT
from frpt_runtime.engine_sidecar import read_sidecar
from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import FRPTConfig
from frpt_runtime.trt_module import import_tensorrt

runner = CliRunner()


def _invoke(*args):
    return runner.invoke(cli.app, [str(a) for a in args])


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = create_model(FRPTConfig(input_size=64, num_classes=3), random_init=True)
    torch.nn.init.normal_(model.parser.conv.weight, std=0.02)
    good = save_checkpoint(model, root / "model.ckpt")
    torch.nn.init.normal_(model.cah.fc2.weight, std=1.0)  # same architecture, other weights
    other = save_checkpoint(model, root / "other.ckpt")
    return root, good, other


@pytest.fixture(scope="module")
def exported(ckpts):
    root, good, _ = ckpts
    out = root / "out" / "model.onnx"
    result = _invoke("onnx", "--ckpt", good, "-o", out)
    return result, out


def test_help_is_instant_and_torch_free():
    code = "import sys, frpt_export.cli; assert 'torch' not in sys.modules and 'onnx' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    result = _invoke("--help")
    assert result.exit_code == 0 and all(c in result.stdout for c in ("onnx", "parity", "trt"))


def test_parity_max_images_below_one_is_a_usage_error(tmp_path):
    for value in ("0", "-2"):  # 0 read as "no decodable image", -2 as "all images"
        result = _invoke("parity", "--ckpt", tmp_path / "m.ckpt", "--onnx", tmp_path / "m.onnx", "--max-images", value)
        assert result.exit_code == 2 and "--max-images" in result.stderr, result.output


def test_onnx_command_writes_files_and_summary(exported):
    result, out = exported
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.stdout and "standard lowering" in result.stdout and "nodes" in result.stdout
    assert "exporting" in result.stderr and "exporting" not in result.stdout
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == ["model.onnx", "model.ref.inputs.json", "model.ref.npz", "model.ref.outputs.json"]


def test_onnx_command_bad_checkpoint_one_line_exit_2(ckpts, tmp_path):
    _root, good, _ = ckpts
    truncated = tmp_path / "trunc.ckpt"
    truncated.write_bytes(good.read_bytes()[:1000])
    for bad in (tmp_path / "missing.ckpt", truncated):
        result = _invoke("onnx", "--ckpt", bad, "-o", tmp_path / "o" / "m.onnx")
        assert result.exit_code == 2
        lines = result.stderr.splitlines()
        assert lines[-1].startswith("error: ") and bad.name in lines[-1]
        assert [ln for ln in lines if "error" in ln.lower()] == lines[-1:]  # one line, no traceback
        assert not (tmp_path / "o").exists()


def test_parity_command_passes_and_fails_naming_the_sample(ckpts, exported):
    root, good, other = ckpts
    _, out = exported
    ok = _invoke("parity", "--ckpt", good, "--onnx", out)
    assert ok.exit_code == 0 and "PASSED" in ok.stdout
    foreign = save_checkpoint(create_model(FRPTConfig(input_size=64, num_classes=4), random_init=True), root / "f.ckpt")
    refused = _invoke("parity", "--ckpt", foreign, "--onnx", out)
    assert refused.exit_code == 2 and "is not the model" in refused.stderr and "num_classes" in refused.stderr
    bad = _invoke("parity", "--ckpt", other, "--onnx", out)
    assert bad.exit_code == 1
    assert "FAILED: sample" in bad.stdout and "error: parity check failed: sample" in bad.stderr


def test_parity_takes_precision_from_the_bundle_and_refuses_an_edited_export(ckpts, exported, tmp_path):
    """Relabelling the export fp16 no longer buys the looser thresholds: the file is not the one its bundle names."""
    import shutil

    import onnx

    from frpt_runtime.contract import bundle_path_for

    _, good, _ = ckpts
    _, out = exported
    edited = tmp_path / "model.onnx"
    shutil.copy(bundle_path_for(out), bundle_path_for(edited))
    model = onnx.load(out)
    for prop in model.metadata_props:
        if prop.key == "frpt.precision":
            prop.value = "fp16"
    onnx.save(model, edited)
    refused = _invoke("parity", "--ckpt", good, "--onnx", edited)
    error = refused.stderr.splitlines()[-1]  # after the progress line
    assert refused.exit_code == 2 and error.startswith("error: reference bundle was made for the model with sha256")
    bundle_path_for(edited).unlink()
    missing = _invoke("parity", "--ckpt", good, "--onnx", edited, "--images", tmp_path)
    assert missing.exit_code == 2 and "reference bundle" in missing.stderr and "not found" in missing.stderr


def test_trt_command_exports_fp16_on_the_fly_and_builds(ckpts, exported, tmp_path):
    try:
        import_tensorrt(BUILDER_HINT)
    except FrptError as exc:
        pytest.skip(f"needs a TensorRT builder: {exc}")
    _, good, _ = ckpts
    _, fp32_onnx = exported
    refused = _invoke("trt", "--onnx", fp32_onnx, "--fp16")
    assert refused.exit_code == 2 and "--ckpt" in refused.stderr
    as_is = _invoke("trt", "--onnx", fp32_onnx, "-o", tmp_path / "as_is" / "m.plan", "--max-batch", 2, "--opt-batch", 1)
    assert as_is.exit_code == 0, as_is.output
    assert read_sidecar(tmp_path / "as_is" / "m.plan").metadata.precision == "fp32"
    shutil.rmtree(tmp_path / "as_is")
    plan = tmp_path / "model.plan"
    result = _invoke("trt", "--ckpt", good, "--fp16", "-o", plan, "--min-batch", 1, "--opt-batch", 2, "--max-batch", 4)
    assert result.exit_code == 0, result.output
    assert "engine" in result.stdout and "fp16" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.onnx",
        "model.plan",
        "model.plan.json",
        "model.ref.inputs.json",
        "model.ref.npz",
        "model.ref.outputs.json",
    ]
    side = read_sidecar(plan)
    assert (side.metadata.precision, side.max_batch) == ("fp16", 4)


def test_trt_refuses_a_plan_path_that_is_an_input(ckpts, exported, tmp_path):
    _, good, _ = ckpts
    _, onnx_path = exported
    named_like_a_plan = tmp_path / "model.plan"  # a checkpoint whose name ends in .plan
    named_like_a_plan.write_bytes(good.read_bytes())
    (tmp_path / "adir.plan").mkdir()
    before = onnx_path.read_bytes(), good.read_bytes()
    cases = [
        (["--onnx", onnx_path, "-o", onnx_path], "must name an engine file"),
        (["--ckpt", good, "--fp16", "-o", tmp_path / "y.onnx"], "must name an engine file"),  # graph == engine
        (["--ckpt", named_like_a_plan, "-o", named_like_a_plan], "would overwrite the input"),
        (["--onnx", onnx_path, "-o", tmp_path / "adir.plan"], "is a folder"),
    ]
    for args, message in cases:
        result = _invoke("trt", *args)
        assert result.exit_code == 2 and message in result.stderr, result.output
    assert (onnx_path.read_bytes(), good.read_bytes()) == before and not (tmp_path / "y.onnx").exists()
    ignored = _invoke("trt", "--onnx", onnx_path, "--lowering", "plugin")  # would be ignored: refused
    assert ignored.exit_code == 2 and "apply when exporting from --ckpt" in ignored.stderr


def test_missing_dependency_names_the_extra(ckpts, exported, monkeypatch):
    _, good, _ = ckpts
    _, out = exported

    def missing(*args):
        raise ModuleNotFoundError("No module named 'onnx'", name="onnx")

    monkeypatch.setattr("frpt_export.reference.live_parity", missing)
    result = _invoke("parity", "--ckpt", good, "--onnx", out)
    assert result.exit_code == 2 and "pip install 'frpt-toolkit[export]'" in result.stderr
