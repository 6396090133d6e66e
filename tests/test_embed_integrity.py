"""frpt-embed against a hostile or careless user (issue 9): concurrent runs, kills at every write, changed files,
odd names and folders, full disks, non-finite output. Kill points come from tests/crash_harness.py, never from
product code."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from runtime_toys import TOY_SIZE, make_image_folder, make_toy_onnx, write_embed_output
from typer.testing import CliRunner

from frpt_runtime import atomic, image_files
from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend, max_batch_for
from frpt_runtime.cli import embed_app
from frpt_runtime.embed import embed_folder
from frpt_runtime.errors import FrptError
from frpt_runtime.journal import PARTIAL_DIR
from frpt_runtime.manifest import read_embeddings, read_manifest

HARNESS = Path(__file__).with_name("crash_harness.py")
FINAL = [".frpt-embed.lock", "embeddings.npy", "manifest.json", "run.json"]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    model = tmp_path / "toy.onnx"
    make_toy_onnx(model)
    return make_image_folder(tmp_path / "images"), model


def _embed(
    folder: Path, model: Path, out: Path, *extra: str, spec: str | None = None, **popen
) -> subprocess.CompletedProcess:
    """frpt-embed in a fresh process, batch 2; ``spec``: a crash_harness kill spec (e.g. ``replace:state.json:1``)."""
    launcher = ["-c", "from frpt_runtime.cli import embed_app; embed_app()"]
    if spec is not None:
        launcher = [str(HARNESS), spec, "frpt_runtime.cli:embed_app"]
    cmd = [sys.executable, *launcher, str(folder), "--onnx", str(model), "--out", str(out), "-b", "2", "--workers", "2"]
    return subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=180, **popen)


def _pair(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ("embeddings.npy", "manifest.json")}


def _one_line_error(done: subprocess.CompletedProcess, *parts: str) -> None:
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    for part in parts:
        assert part in done.stderr, done.stderr


def _wait_stopped(pid: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        time.sleep(0.05)
    raise AssertionError("the first run never reached its stop point")


# ---- item 1: one run per output folder -------------------------------------------------------------------------


def test_second_run_on_the_same_out_is_refused_and_a_killed_holder_leaves_no_stale_lock(setup, tmp_path) -> None:
    folder, model = setup
    out = tmp_path / "out"
    cmd = [sys.executable, str(HARNESS), "fsync:rows.f32:2:stop", "frpt_runtime.cli:embed_app", str(folder)]
    first = subprocess.Popen([*cmd, "--onnx", str(model), "--out", str(out), "-b", "2"], stderr=subprocess.PIPE)
    try:
        _wait_stopped(first.pid)  # paused mid-run, holding the lock, its partial state half written
        second = _embed(folder, model, out)
        _one_line_error(second, f"{out} is in use by another frpt-embed run (pid {first.pid})")
        assert (out / PARTIAL_DIR / "journal.jsonl").read_text().count("\n") == 1  # the first run's state untouched
    finally:
        first.send_signal(signal.SIGKILL)  # kill -9: the OS drops the lock
        first.wait(timeout=60)
    resumed = _embed(folder, model, out, "--resume", "--json")
    assert resumed.returncode == 0 and json.loads(resumed.stdout)["result"]["embed"]["resumed_images"] == 2, (
        resumed.stderr
    )
    assert sorted(os.listdir(out)) == FINAL


# ---- item 2: the commit protocol --------------------------------------------------------------------------------


def test_kill_between_the_final_renames_leaves_a_pair_every_reader_refuses(setup, tmp_path) -> None:
    folder, model = setup
    other = tmp_path / "other.onnx"
    make_toy_onnx(other, seed=1)
    expected = tmp_path / "expected"
    assert _embed(folder, other, expected).returncode == 0
    out = tmp_path / "out"
    assert _embed(folder, model, out).returncode == 0  # a finished run of one model ...
    killed = _embed(folder, other, out, spec="replace:embeddings.npy:1")  # ... then another model's run, killed
    assert killed.returncode == -9  # between its embeddings.npy and its manifest.json
    with pytest.raises(FrptError, match="embeddings.npy is not the file manifest.json describes") as info:
        read_embeddings(out)
    assert "\n" not in str(info.value)
    from frpt.cli import eval_app

    refused = CliRunner().invoke(eval_app, ["--embeddings", str(out)])
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1 and "sha256 differs" in refused.stderr
    finished = _embed(folder, other, out, "--resume")
    assert finished.returncode == 0, finished.stderr
    assert _pair(out) == _pair(expected)  # the interrupted run, finished


def test_temp_file_of_a_killed_manifest_write_is_removed_by_the_next_run(setup, tmp_path) -> None:
    folder, model = setup
    out = tmp_path / "out"
    assert _embed(folder, model, out, spec="fsync:.manifest.json.*.tmp:1").returncode == -9
    assert any(name.startswith(".manifest.json.") for name in os.listdir(out))
    done = _embed(folder, model, out, "--resume")
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(out)) == FINAL
    assert "all 12 files were done by the interrupted run" in done.stdout and "0.0 images/s" not in done.stdout
    assert json.loads((out / "run.json").read_text())["images_per_s"] is None  # Smaller: a fully resumed run


# ---- item 3: every crash point resumable ------------------------------------------------------------------------


def test_kill_right_after_state_json_is_resumable(setup, tmp_path) -> None:
    """The partial folder's files exist before state.json names it a partial run (was: --resume wedged for good)."""
    folder, model = setup
    expected, out = tmp_path / "expected", tmp_path / "out"
    assert _embed(folder, model, expected).returncode == 0
    assert _embed(folder, model, out, spec="replace:state.json:1").returncode == -9
    done = _embed(folder, model, out, "--resume")
    assert done.returncode == 0, done.stderr
    assert _pair(out) == _pair(expected)


def test_missing_journal_restarts_the_resume_from_chunk_0(setup, tmp_path) -> None:
    folder, model = setup
    expected, out = tmp_path / "expected", tmp_path / "out"
    assert _embed(folder, model, expected).returncode == 0
    assert _embed(folder, model, out, spec="fsync:journal.jsonl:3").returncode == -9
    (out / PARTIAL_DIR / "journal.jsonl").unlink()
    done = _embed(folder, model, out, "--resume", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["result"]["embed"]["resumed_images"] == 0, done.stderr
    assert _pair(out) == _pair(expected)


def test_kill_trial_sample_in_the_default_path(setup, tmp_path) -> None:
    """A few kill points of the full trial (tests/test_kill_trial.py runs every one)."""
    folder, model = setup
    expected = tmp_path / "expected"
    assert _embed(folder, model, expected).returncode == 0
    for spec in (
        "fsync:.frpt-embed.lock:1",
        "fsync:.frpt-embed.partial:1",
        "fsync:rows.f32:3",
        "fsync:journal.jsonl:6",
    ):
        out = tmp_path / spec.replace(":", "_")
        assert _embed(folder, model, out, spec=spec).returncode == -9, spec
        done = _embed(folder, model, out, "--resume")
        assert done.returncode == 0 and _pair(out) == _pair(expected), (spec, done.stderr)


# ---- item 4: the resume fingerprint covers size and mtime -------------------------------------------------------


def test_resume_refuses_when_an_embedded_file_changed_and_names_it(setup, tmp_path) -> None:
    folder, model = setup
    out = tmp_path / "out"
    assert _embed(folder, model, out, spec="fsync:journal.jsonl:2").returncode == -9  # chunks 0 and 1 finished
    done_file = folder / "class0" / "img0.jpg"  # listing position 1: in chunk 0
    stat = done_file.stat()
    os.utime(done_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same size, new modification time
    refused = _embed(folder, model, out, "--resume")
    _one_line_error(refused, "--resume: class0/img0.jpg changed since the interrupted run embedded it", "drop --resume")
    os.utime(done_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    later_file = folder / "notes.png"  # the last file: its chunk never ran, so it is embedded as it is now
    later_file.write_bytes((folder / "class1" / "img1.png").read_bytes())
    expected = tmp_path / "expected"
    assert _embed(folder, model, expected).returncode == 0
    done = _embed(folder, model, out, "--resume")
    assert done.returncode == 0, done.stderr
    assert _pair(out) == _pair(expected) and "notes.png" in read_manifest(out)["images"]


# ---- items 5, 6: every path accounted for; any name ------------------------------------------------------------


def test_every_candidate_not_embedded_is_in_the_manifest_with_its_reason(setup, tmp_path, monkeypatch) -> None:
    folder, model = setup
    outside = tmp_path / "outside"
    outside.mkdir()
    make_image_folder(outside / "more", good=2)
    (folder / "linked").symlink_to(outside / "more")
    (folder / "escape.png").symlink_to(outside / "more" / "class0" / "img0.jpg")
    os.mkfifo(folder / "pipe.png")
    (folder / "locked").mkdir()
    (folder / "locked" / "x.png").write_bytes((folder / "class1" / "img1.png").read_bytes())
    real = os.scandir
    monkeypatch.setattr(image_files.os, "scandir", lambda p: _refuse(p) if _named(p, "locked") else real(p))
    with OnnxRuntimeBackend(model) as backend:
        report = embed_folder(folder, backend, tmp_path / "out", batch=4, workers=2)
        followed = embed_folder(folder, backend, tmp_path / "follow", batch=4, workers=2, follow_symlinks=True)
    reasons = {item["path"]: item["reason"] for item in read_manifest(tmp_path / "out")["skipped"]}
    assert reasons == {
        "broken.jpg": reasons["broken.jpg"],
        "empty.png": "zero-byte file",
        "notes.png": reasons["notes.png"],
        "escape.png": "symlink leaving the root (pass --follow-symlinks to follow it)",
        "linked/": "symlinked folder not followed (pass --follow-symlinks to follow it)",
        "locked/": "unreadable folder (PermissionError: Permission denied)",
        "pipe.png": "not a regular file (a FIFO)",
    }
    assert report.count == 9 and followed.count == 9 + 1 + 2  # escape.png and linked/ followed on request
    bad = ["broken.jpg", "empty.png", "notes.png"]
    assert {path for path, _ in followed.skipped} == {*bad, *(f"linked/{name}" for name in bad), "locked/", "pipe.png"}


def _named(path: object, name: str) -> bool:
    return isinstance(path, str | os.PathLike) and Path(path).name == name


def _refuse(path: object) -> None:
    raise PermissionError(errno.EACCES, "Permission denied", str(path))


def test_odd_names_are_embedded_listed_and_kept_on_one_line(setup, tmp_path) -> None:
    folder, model = setup
    good = (folder / "class1" / "img1.png").read_bytes()
    with open(os.fsencode(folder) + b"/caf\xe9.png", "wb") as handle:  # not UTF-8: was a crash with exit 1
        handle.write(good)
    with open(os.fsencode(folder) + b"/bad\xff.jpg", "wb") as handle:
        handle.write(b"not a jpeg")
    (folder / "x\nembedded 999 images (fake).png").write_text("not a png")
    out = tmp_path / "out"
    assert _embed(folder, model, out, spec="fsync:journal.jsonl:2").returncode == -9  # the fingerprint hashes them
    done = _embed(folder, model, out, "--resume")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_bytes().decode("utf-8"))  # valid UTF-8 JSON
    assert "caf\udce9.png" in manifest["images"] and os.fsencode("caf\udce9.png") == b"caf\xe9.png"
    assert {"bad\udcff.jpg", "x\nembedded 999 images (fake).png"} <= {item["path"] for item in manifest["skipped"]}
    lines = done.stdout.splitlines()
    assert not any(line.startswith("embedded 999") for line in lines)
    assert any(line.startswith("  x\\x0aembedded 999 images (fake).png: ") for line in lines)
    assert any(line.startswith("  bad\\udcff.jpg: ") for line in lines)
    assert len(lines) == 3 + len(manifest["skipped"])


# ---- Smaller ------------------------------------------------------------------------------------------------------


def test_a_folder_where_nothing_decodes_fails_with_the_skip_list_written(tmp_path, setup) -> None:
    _, model = setup
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_text("text")
    (folder / "b.jpg").write_bytes(b"")
    done = _embed(folder, model, tmp_path / "out")
    _one_line_error(done, f"none of the 2 candidate files under {folder} could be embedded", "manifest.json lists")
    manifest = read_manifest(tmp_path / "out")
    assert manifest["count"] == 0 and [item["path"] for item in manifest["skipped"]] == ["a.png", "b.jpg"]


def test_decompression_bomb_warning_is_not_printed(setup, tmp_path) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    folder, model = setup  # 10000 x 9000 = 90 M pixels: over PIL's limit, under twice it (PIL warns, not raises)
    ihdr = struct.pack(">IIBBBBB", 10000, 9000, 8, 0, 0, 0, 0)
    (folder / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    done = _embed(folder, model, tmp_path / "out")
    assert done.returncode == 0 and "DecompressionBombWarning" not in done.stderr, done.stderr
    reasons = {item["path"]: item["reason"] for item in read_manifest(tmp_path / "out")["skipped"]}
    assert reasons["bomb.png"].startswith("decompression bomb")


def test_full_disk_names_the_path(setup, tmp_path, monkeypatch) -> None:
    """numpy reports a short write as "N requested and M written" without an errno: the free space decides."""
    folder, model = setup

    class Full:
        f_bavail, f_frsize = 3, 4096

    def short_write(*args: object, **kwargs: object) -> None:
        raise OSError("165888 requested and 82912 written")

    import frpt_runtime.manifest as manifest_module

    monkeypatch.setattr(manifest_module.np, "save", short_write)
    monkeypatch.setattr(atomic.os, "statvfs", lambda path: Full())
    out = tmp_path / "out"
    with OnnxRuntimeBackend(model) as backend, pytest.raises(FrptError) as info:
        embed_folder(folder, backend, out, batch=4, workers=2)
    assert str(info.value).startswith(f"disk full at {out / 'embeddings.npy'}: free space")
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]
    assert atomic.disk_full_error(out / "x", OSError(errno.ENOSPC, "No space left on device")) is not None
    monkeypatch.setattr(atomic.os, "statvfs", lambda path: type("Roomy", (), {"f_bavail": 1 << 30, "f_frsize": 4096}))
    assert atomic.disk_full_error(out / "x", OSError("165888 requested and 82912 written")) is None


def test_nan_in_the_embeddings_is_one_line_for_frpt_eval(tmp_path) -> None:
    from frpt.cli import eval_app

    rows = np.eye(4, 2, dtype=np.float32)
    rows[2, 1] = np.nan
    write_embed_output(tmp_path, ["a/1.png", "a/2.png", "b/1.png", "b/2.png"], rows)
    result = CliRunner().invoke(eval_app, ["--embeddings", str(tmp_path)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "holds NaN or Inf in 1 rows (first: row 2, b/1.png)" in result.stderr


def test_batch_size_over_the_onnx_runtime_cap_is_one_line(setup, tmp_path) -> None:
    folder, model = setup
    result = CliRunner().invoke(embed_app, [str(folder), "--onnx", str(model), "-o", str(tmp_path / "o"), "-b", "5000"])
    cap = max_batch_for(TOY_SIZE)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert f"batch 5000 exceeds the maximum {cap} of toy.onnx: pass --batch-size {cap}" in result.stderr
    assert not (tmp_path / "o").exists()
