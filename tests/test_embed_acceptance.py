"""Acceptance: a real FRPT (pretrained Lite0, 64 px) exported to ONNX, embedded with ONNX Runtime by ``frpt-embed``.

The folder mixes good images with a corrupt JPEG, a zero-byte file, a PNG with alpha, a grayscale image
and a non-image: the good ones are embedded with parity <= 1e-4 against ``model.embed_uint8`` on the same
uint8 pixels, the bad ones are listed; a run killed mid-way and resumed writes byte-identical outputs;
``frpt-verify`` passes on the export's reference bundle.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from frpt_runtime.images import load_image
from frpt_runtime.manifest import read_manifest
from frpt_runtime.parity import FP32_MAX_ABS, compare_embeddings

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow

SIZE = 64


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    from frpt.model import create_model
    from frpt_export.onnx_export import export_onnx
    from frpt_runtime.families.frpt import FRPTConfig

    torch.manual_seed(0)
    model = create_model(FRPTConfig(input_size=SIZE, num_classes=5)).eval()
    path = tmp_path_factory.mktemp("export") / "frpt.onnx"
    report = export_onnx(model, path)
    assert report.parity["passed"], report.parity
    return model, path


def _folder(root: Path) -> Path:
    from skimage import data

    root.mkdir()
    photos = {"chelsea": data.chelsea(), "coffee": data.coffee(), "astronaut": data.astronaut()}
    for name, pixels in photos.items():
        (root / "photos").mkdir(exist_ok=True)
        Image.fromarray(pixels).resize((pixels.shape[1] // 4, pixels.shape[0] // 4)).save(
            root / "photos" / f"{name}.jpg"
        )
    rgba = np.dstack([data.chelsea()[::4, ::4], np.full(data.chelsea()[::4, ::4].shape[:2], 128, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(root / "alpha.png")
    Image.fromarray(data.camera()[::4, ::4], mode="L").save(root / "gray.png")
    good = (root / "photos" / "coffee.jpg").read_bytes()
    (root / "corrupt.jpg").write_bytes(good[:300] + bytes(200) + good[500:520])
    (root / "zero.jpg").write_bytes(b"")
    (root / "readme.png").write_text("this is text, not a PNG")
    return root


def _embed(folder: Path, model: Path, out: Path, *extra: str, crash: int | None = None) -> subprocess.CompletedProcess:
    """The installed frpt-embed; ``crash=K``: SIGKILL after chunk K's rows are fsync'd (tests/crash_harness.py)."""
    if crash is None:
        launcher = [str(Path(sys.executable).with_name("frpt-embed"))]
    else:
        harness = str(Path(__file__).with_name("crash_harness.py"))
        launcher = [sys.executable, harness, f"fsync:rows.f32:{crash + 1}", "frpt_runtime.cli:embed_app"]
    cmd = [
        *launcher,
        str(folder),
        "--onnx",
        str(model),
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--workers",
        "2",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_frpt_embed_real_model_bad_files_parity_and_resume(exported, tmp_path: Path) -> None:
    model, onnx_path = exported
    folder = _folder(tmp_path / "images")
    full, resumed = tmp_path / "full", tmp_path / "resumed"

    done = _embed(folder, onnx_path, full)
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(full)
    assert manifest["images"] == [
        "alpha.png",
        "gray.png",
        "photos/astronaut.jpg",
        "photos/chelsea.jpg",
        "photos/coffee.jpg",
    ]
    assert {item["path"] for item in manifest["skipped"]} == {"corrupt.jpg", "zero.jpg", "readme.png"}
    assert all(item["reason"] for item in manifest["skipped"])

    cfg = model.config
    pixels = np.stack([load_image(folder / name, SIZE, cfg.crop_pct, cfg.decoder) for name in manifest["images"]])
    with torch.no_grad():
        reference = model.embed_uint8(torch.from_numpy(pixels)).numpy()
    embeddings = np.load(full / "embeddings.npy")
    report = compare_embeddings(reference, embeddings, "fp32")
    assert report.passed and report.max_abs <= FP32_MAX_ABS, report.format()

    assert _embed(folder, onnx_path, resumed, crash=1).returncode == -9  # killed with chunk 1's rows unjournaled
    again = _embed(folder, onnx_path, resumed, "--resume", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["result"]["embed"]["resumed_images"] == 2
    for name in ("embeddings.npy", "manifest.json"):
        assert (full / name).read_bytes() == (resumed / name).read_bytes(), name

    verify = subprocess.run(
        [str(Path(sys.executable).with_name("frpt-verify")), str(onnx_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verify.returncode == 0 and "PASSED" in verify.stdout, verify.stdout + verify.stderr


@pytest.mark.parametrize(("lowering", "precision"), [("standard", "fp16"), ("plugin", "fp32")])
def test_verify_configures_itself_from_each_export(exported, tmp_path: Path, lowering: str, precision: str) -> None:
    """fp16 graphs are judged by the fp16 thresholds; plugin graphs run through the exporter's ORT custom op."""
    from typer.testing import CliRunner

    from frpt_export.graph import LowerOptions
    from frpt_export.onnx_export import export_onnx
    from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from frpt_runtime.cli import verify_app
    from frpt_runtime.contract import Lowering, Precision

    model, _ = exported
    path = tmp_path / f"{lowering}-{precision}.onnx"
    export_onnx(model, path, LowerOptions(Lowering(lowering), Precision(precision)))
    with OnnxRuntimeBackend(path) as backend:
        assert (backend.info.lowering, backend.info.precision) == (lowering, precision)
    result = CliRunner().invoke(verify_app, [str(path), "--json"])
    document = json.loads(result.stdout)
    assert document["command"] == "frpt-verify"
    report = document["result"]
    assert result.exit_code == 0 and report["passed"] and report["precision"] == precision, result.output
