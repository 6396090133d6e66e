"""frpt-train / frpt-eval through typer's CliRunner: results on stdout, one-line errors with exit code 2."""

from __future__ import annotations

import json

from PIL import Image
from typer.testing import CliRunner

from frpt.cli import eval_app, train_app

runner = CliRunner()


def test_no_args_prints_help() -> None:
    for app in (train_app, eval_app):
        result = runner.invoke(app, [])
        assert "Usage" in result.output and "--help" in result.output


def test_train_then_eval_with_warps(synthetic_root, tmp_path) -> None:
    ckpt = tmp_path / "model.pt"
    result = runner.invoke(
        train_app,
        [
            "--data",
            str(synthetic_root),
            "--random-init",
            "--input-size",
            "64",
            "--epochs",
            "1",
            "--batch-size",
            "12",
            "--out",
            str(ckpt),
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["command"] == "frpt-train"
    summary = document["result"]
    assert summary["checkpoint"] == str(ckpt) and ckpt.is_file()
    assert summary["parameters"]["trainable"] < summary["parameters"]["total"]
    assert len(summary["history"]) == 1

    png = tmp_path / "warps.png"
    result = runner.invoke(
        eval_app,
        ["--ckpt", str(ckpt), "--data", str(synthetic_root), "--show-warps", "3", "-o", str(png), "--json"],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["command"] == "frpt-eval"
    recall = document["result"]
    assert set(recall) >= {"recall@1", "recall@2", "recall@4", "recall@8", "images", "classes", "warps_png"}
    with Image.open(png) as im:
        assert im.size[0] == 3 * 64 and im.size[1] > 3 * 64

    human = runner.invoke(eval_app, ["--ckpt", str(ckpt), "--data", str(synthetic_root)])
    assert human.exit_code == 0 and human.stdout.startswith("R@1") and "72 images, 36 classes" in human.stdout


def test_eval_of_frpt_embed_output(tmp_path) -> None:
    import numpy as np
    from runtime_toys import write_embed_output

    rows = np.array([[1, 0], [0, 1], [1, 0.1], [0.1, 1]], dtype=np.float32)
    write_embed_output(tmp_path, ["a/1.png", "b/1.png", "b/2.png", "a/2.png"], rows)
    result = runner.invoke(eval_app, ["--embeddings", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["result"]["recall@1"] == 0.0  # nearest neighbours are all of the other class
    result = runner.invoke(eval_app, ["--embeddings", str(tmp_path), "--ckpt", "x.pt"])
    assert result.exit_code == 2 and "not both" in result.stderr


def test_user_errors_are_one_line_exit_2(tmp_path, synthetic_root) -> None:
    result = runner.invoke(eval_app, ["--ckpt", str(tmp_path / "absent.pt"), "--data", str(synthetic_root)])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "checkpoint not found" in result.stderr
    result = runner.invoke(train_app, ["--out", str(tmp_path / "x.pt")])
    assert result.exit_code == 2 and "exactly one of --data" in result.stderr
    result = runner.invoke(train_app, ["--data", str(synthetic_root), "--backbone", "resnet50"])
    assert result.exit_code == 2 and "--backbone-weights" in result.stderr
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for extra, message in [  # refused before any training: a long run is never lost at the save
        (["--out", str(tmp_path)], "is a folder"),
        (["--out", str(afile / "x.pt")], "which is a file"),
        (["--out", str(tmp_path / "y.pt"), "--lr", "-1"], "--lr must be > 0"),
    ]:
        result = runner.invoke(train_app, ["--data", str(synthetic_root), "--random-init", *extra])
        assert result.exit_code == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert afile.read_text() == "keep me"


def test_bad_backbone_weights_are_refused_before_the_synthetic_set_is_generated(tmp_path) -> None:
    """frpt-train checks every input first: a bad --backbone-weights file costs no data generation (issue 9)."""
    weights = tmp_path / "resnet50.pth"
    weights.write_bytes(b"not a torch file")
    synthetic = tmp_path / "birds"
    args = ["--synthetic", str(synthetic), "--backbone", "resnet50", "--backbone-weights", str(weights)]
    result = runner.invoke(train_app, [*args, "--out", str(tmp_path / "m.pt")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "cannot read ResNet-50 weights" in result.stderr and not synthetic.exists()
