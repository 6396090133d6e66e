"""frpt-embed on a hand-built contract graph: pipeline, skipping bad files, atomic outputs, resume, CLI, verify."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from runtime_toys import (
    BAD_FILES,
    TOY_SIZE,
    expected_embeddings,
    make_image_folder,
    make_toy_onnx,
    toy_bundle,
    toy_reference,
)
from typer.testing import CliRunner

from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from frpt_runtime.bundle import RefBundle, save_bundle
from frpt_runtime.cli import embed_app, verify_app
from frpt_runtime.contract import Precision
from frpt_runtime.digests import sha256_file
from frpt_runtime.embed import embed_folder
from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import FRPTConfig
from frpt_runtime.images import ImageDecodeError
from frpt_runtime.journal import PARTIAL_DIR
from frpt_runtime.manifest import read_manifest
from frpt_runtime.pipeline import BatchPipeline

HARNESS = Path(__file__).with_name("crash_harness.py")


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    model = tmp_path / "toy.onnx"
    weights = make_toy_onnx(model)
    return make_image_folder(tmp_path / "images"), model, weights


def test_pipeline_batches_by_position_and_runs_ahead(tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.png" for i in range(10)]
    started: list[int] = []
    lock = threading.Lock()

    def decode(path: Path, size: int, crop: float) -> np.ndarray:
        index = int(path.stem)
        with lock:
            started.append(index)
        if index in (3, 4):
            raise ImageDecodeError(f"bad {index}")
        return np.full((size, size, 3), index, np.uint8)

    with BatchPipeline(paths, 4, 1.0, batch=4, workers=2, depth=2, decode=decode) as pipeline:
        batches = iter(pipeline)
        first = next(batches)
        time.sleep(0.2)
        assert len(started) == 10  # decoding ran ahead of the consumer
        rest = list(batches)
    assert [b.index for b in [first, *rest]] == [0, 1, 2] and [b.start for b in [first, *rest]] == [0, 4, 8]
    assert [p.stem for p in rest[0].paths] == ["5", "6", "7"]
    assert rest[0].skipped == [(paths[4], "bad 4")] and first.skipped == [(paths[3], "bad 3")]
    assert rest[0].images[:, 0, 0, 0].tolist() == [5, 6, 7] and rest[1].images.shape == (2, 4, 4, 3)
    with BatchPipeline(paths, 4, 1.0, batch=4, start_chunk=2, decode=decode) as pipeline:
        assert [b.index for b in pipeline] == [2]


def test_pipeline_propagates_decoder_bugs_and_stops_early(tmp_path: Path) -> None:
    def broken(path: Path, size: int, crop: float) -> np.ndarray:
        raise KeyError("bug")

    with pytest.raises(KeyError), BatchPipeline([tmp_path / "a.png"], 4, 1.0, batch=1, decode=broken) as pipeline:
        list(pipeline)
    paths = [tmp_path / f"{i}.png" for i in range(200)]
    with BatchPipeline(paths, 4, 1.0, batch=1, decode=lambda p, s, c: np.zeros((s, s, 3), np.uint8)) as pipeline:
        next(iter(pipeline))  # leaving early must not hang on the full queue


def test_embed_folder_skips_bad_files_and_matches_reference(
    setup: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    folder, model, weights = setup
    out = tmp_path / "out"
    with OnnxRuntimeBackend(model) as backend:
        report = embed_folder(folder, backend, out, batch=4, workers=2)
    names, expected = expected_embeddings(folder, weights)
    manifest = read_manifest(out)
    embeddings = np.load(out / "embeddings.npy")
    assert report.count == 9 == len(names) and manifest["images"] == names
    assert embeddings.dtype == np.float32 and embeddings.shape == (9, 8)
    np.testing.assert_allclose(embeddings, expected, atol=1e-5)
    assert {item["path"] for item in manifest["skipped"]} == BAD_FILES
    reasons = {item["path"]: item["reason"] for item in manifest["skipped"]}
    assert reasons["empty.png"] == "zero-byte file" and "not an image" in reasons["notes.png"]
    assert manifest["model"]["sha256"] == sha256_file(model)
    assert manifest["backend"] == "onnxruntime" and manifest["precision"] == "fp32"
    assert (
        manifest["timings_file"] == "run.json" and json.loads((out / "run.json").read_text())["images_processed"] == 12
    )
    assert not (out / PARTIAL_DIR).exists()
    assert sorted(p.name for p in out.iterdir()) == [".frpt-embed.lock", "embeddings.npy", "manifest.json", "run.json"]


def test_embed_refuses_empty_folder_before_loading_model(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(FrptError, match="no images under"):
        embed_folder(tmp_path / "empty", OnnxRuntimeBackend(tmp_path / "missing.onnx"), tmp_path / "out")


def _cli_embed(
    folder: Path, model: Path, out: Path, *extra: str, crash: int | None = None
) -> subprocess.CompletedProcess:
    """frpt-embed in a subprocess; ``crash=K``: SIGKILL after chunk K's rows are fsync'd, before its journal line."""
    if crash is None:
        launcher = ["-c", "from frpt_runtime.cli import embed_app; embed_app()"]
    else:
        launcher = [str(HARNESS), f"fsync:rows.f32:{crash + 1}", "frpt_runtime.cli:embed_app"]
    cmd = [
        sys.executable,
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
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_resume_after_kill_is_byte_identical(setup: tuple[Path, Path, np.ndarray], tmp_path: Path) -> None:
    folder, model, _ = setup
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert _cli_embed(folder, model, full).returncode == 0
    killed = _cli_embed(folder, model, resumed, crash=3)
    assert killed.returncode == -9, killed.stderr  # SIGKILL after chunk 3's rows, before its journal line
    journal = (resumed / PARTIAL_DIR / "journal.jsonl").read_text().splitlines()
    assert len(journal) == 3 and not (resumed / "manifest.json").exists()
    rows_bytes = (resumed / PARTIAL_DIR / "rows.f32").stat().st_size
    journaled = sum(len(json.loads(line)["paths"]) for line in journal)
    assert rows_bytes > journaled * 8 * 4  # orphan rows of the unjournaled chunk are on disk
    done = _cli_embed(folder, model, resumed, "--resume", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["result"]["embed"]
    assert report["resumed_images"] == 6 and report["count"] == 9
    for name in ("embeddings.npy", "manifest.json"):
        assert (full / name).read_bytes() == (resumed / name).read_bytes(), name


def test_resume_refuses_other_run_and_restarts_without_flag(
    setup: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    folder, model, _ = setup
    out = tmp_path / "out"
    assert _cli_embed(folder, model, out, crash=1).returncode == -9
    other = _cli_embed(folder, model, out, "--resume", "--batch-size", "3")
    expected = f"partial run in {out / PARTIAL_DIR} is for a different run (differs in: batch): drop --resume"
    assert other.returncode == 2 and other.stderr.strip().splitlines() == [f"error: {expected} to start over"]
    fresh = _cli_embed(folder, model, out, "--json")
    assert fresh.returncode == 0 and json.loads(fresh.stdout)["result"]["embed"]["resumed_images"] == 0


def test_cli_verify_passes_and_fails_with_report(setup: tuple[Path, Path, np.ndarray], tmp_path: Path) -> None:
    _, model, weights = setup
    runner = CliRunner()
    toy_bundle(model.with_name("toy.ref.npz"), weights, model)
    ok = runner.invoke(verify_app, [str(model)])
    assert ok.exit_code == 0 and "PASSED" in ok.stdout and "<= 1e-04" in ok.stdout
    bad = toy_bundle(tmp_path / "bad.ref.npz", weights, model, noise=1e-3)
    failed = runner.invoke(verify_app, [str(model), "--bundle", str(bad)])
    assert failed.exit_code == 1 and "FAILED: sample 4" in failed.stdout
    missing = runner.invoke(verify_app, [str(model), "--bundle", str(tmp_path / "none.npz")])
    assert missing.exit_code == 2 and "not found" in missing.stderr


def test_cli_embed_verify_and_errors(setup: tuple[Path, Path, np.ndarray], tmp_path: Path) -> None:
    folder, model, weights = setup
    runner = CliRunner()
    toy_bundle(model.with_name("toy.ref.npz"), weights, model)
    result = runner.invoke(
        embed_app, [str(folder), "--onnx", str(model), "--out", str(tmp_path / "o"), "--verify", "--batch-size", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.stdout and "embedded 9 images" in result.stdout and "broken.jpg:" in result.stdout
    bad = toy_bundle(tmp_path / "bad.ref.npz", weights, model, noise=1e-2)
    failed = runner.invoke(
        embed_app, [str(folder), "--onnx", str(model), "--out", str(tmp_path / "f"), "--verify", "--bundle", str(bad)]
    )
    assert failed.exit_code == 1 and not (tmp_path / "f" / "embeddings.npy").exists()
    for args, message in [
        ([str(folder)], "exactly one model"),
        ([str(tmp_path / "nope"), "--onnx", str(model)], "nope not found"),
        ([str(folder), "--onnx", str(tmp_path / "none.onnx")], "model file not found"),
        ([str(folder), "--onnx", str(model), "--providers", "cuda"], "'cuda' is not available"),
        ([str(folder), "--onnx", str(model), "--bundle", str(tmp_path / "b.npz")], "add --verify"),
        ([str(folder), "--onnx", str(model), "--plugin-lib", str(tmp_path / "l.so")], "TensorRT engines only"),
    ]:
        res = runner.invoke(embed_app, [*args, "--out", str(tmp_path / "x")])
        assert res.exit_code == 2 and res.stderr.count("\n") == 1 and message in res.stderr, (args, res.stderr)
    assert "--resume" in runner.invoke(embed_app, []).output  # no arguments: the help


def test_progress_bar_on_stderr_with_rate(
    setup: tuple[Path, Path, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, model, _ = setup
    with OnnxRuntimeBackend(model) as backend:
        embed_folder(folder, backend, tmp_path / "p", batch=4, progress=True)
        captured = capsys.readouterr()
        assert "12/12" in captured.err and "img/s" in captured.err and captured.out == ""
        embed_folder(folder, backend, tmp_path / "q", batch=4)  # stderr is not a TTY here: no bar
        assert capsys.readouterr().err == ""


def test_resume_drops_torn_journal_line_and_refuses_corrupt_one(
    setup: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    folder, model, _ = setup
    out = tmp_path / "out"
    assert _cli_embed(folder, model, out, crash=2).returncode == -9
    journal = out / PARTIAL_DIR / "journal.jsonl"
    with open(journal, "ab") as handle:
        handle.write(b'{"chunk": 2, "pa')  # a crash in the middle of appending
    done = _cli_embed(folder, model, out, "--resume", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["result"]["embed"]["resumed_images"] == 4
    assert _cli_embed(folder, model, out, crash=1).returncode == -9
    journal.write_bytes(b"garbage\n")
    broken = _cli_embed(folder, model, out, "--resume")
    assert broken.returncode == 2 and "corrupt journal" in broken.stderr


def test_cli_embed_refuses_bad_out_and_workers_before_work(
    setup: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    folder, model, _ = setup
    runner = CliRunner()
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o555)
    cases = [
        (["--out", str(afile)], "is a file, not a folder"),
        (["--out", str(afile / "sub")], "which is a file, not a folder"),
        (["--out", str(tmp_path / "w"), "--workers", "0"], "--workers must be >= 1, got 0"),
    ]
    if not os.access(readonly, os.W_OK):  # root writes anyway
        cases.append((["--out", str(readonly / "sub")], "is not writable"))
    for extra, message in cases:
        res = runner.invoke(embed_app, [str(folder), "--onnx", str(model), *extra])
        assert res.exit_code == 2 and res.stderr.count("\n") == 1 and message in res.stderr, (extra, res.stderr)
    assert afile.read_text() == "keep me" and not (tmp_path / "w").exists()


def test_os_error_mid_run_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from frpt_runtime.cli_common import run_command

    def body() -> int:
        raise OSError(28, "No space left on device")

    with pytest.raises(typer.Exit) as exit_info:
        run_command(False, body)
    assert exit_info.value.exit_code == 2
    assert capsys.readouterr().err == "error: OSError: [Errno 28] No space left on device\n"
    with pytest.raises(OSError):
        run_command(True, body)


def test_cli_verify_refuses_bundle_of_another_model(setup: tuple[Path, Path, np.ndarray], tmp_path: Path) -> None:
    _, model, weights = setup
    images = np.random.default_rng(5).integers(0, 256, (4, TOY_SIZE, TOY_SIZE, 3), dtype=np.uint8)
    embeddings = toy_reference(images, weights)
    runner = CliRunner()
    for name, emb, config, message in [
        ("narrow", embeddings[:, :4].copy(), FRPTConfig(input_size=TOY_SIZE, crop_pct=1.0), "D=4 but toy.onnx outputs"),
        ("other", embeddings, FRPTConfig(input_size=TOY_SIZE, crop_pct=1.0, pooling="gem"), "differs in: pooling"),
    ]:
        bundle = RefBundle(images, emb, np.array([4], np.int64), config, sha256_file(model), Precision.fp32)
        path = save_bundle(tmp_path / f"{name}.ref.npz", bundle)
        res = runner.invoke(verify_app, [str(model), "--bundle", str(path)])
        assert res.exit_code == 2 and res.stderr.count("\n") == 1 and message in res.stderr, res.stderr


def test_resume_refuses_to_overwrite_a_finished_foreign_run(
    setup: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    folder, model, _ = setup
    out = tmp_path / "out"
    assert _cli_embed(folder, model, out).returncode == 0
    before = {name: (out / name).read_bytes() for name in ("embeddings.npy", "manifest.json")}
    other = tmp_path / "other.onnx"
    make_toy_onnx(other, seed=1)
    refused = _cli_embed(folder, other, out, "--resume")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "finished run of another job (differs in: model_sha256)" in refused.stderr
    assert {name: (out / name).read_bytes() for name in before} == before
    same = _cli_embed(folder, model, out, "--resume")  # the same finished run: redone, byte-identical
    assert same.returncode == 0 and (out / "embeddings.npy").read_bytes() == before["embeddings.npy"], same.stderr
    assert _cli_embed(folder, model, tmp_path / "new", "--resume").returncode == 0  # nothing there: starts fresh


def test_ctrl_c_names_resume_and_exits_130(
    setup: tuple[Path, Path, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, model, _ = setup
    import frpt_runtime.embed_job as embed_module

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(embed_module, "embed_folder", interrupted)
    res = CliRunner().invoke(embed_app, [str(folder), "--onnx", str(model), "--out", str(tmp_path / "o")])
    assert res.exit_code == 130, res.output
    assert res.stderr.count("\n") == 1 and "continue with --resume" in res.stderr
