"""frpt-embed --resume: every fingerprint field refuses a resume of another run, and journal repair survives a second
crash. In-process: the interrupted run is a backend that raises at a chosen chunk (the partial state it leaves is the
one a kill at that point leaves); torn journal lines and orphan rows of a kill mid-append are written by the test."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from runtime_toys import make_image_folder, make_toy_onnx

from frpt_runtime.backends.base import ModelInfo, Pending
from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from frpt_runtime.embed import embed_folder
from frpt_runtime.errors import FrptError
from frpt_runtime.journal import PARTIAL_DIR

BATCH = 2  # 12 candidate files: chunks 0..5


class _Interrupted(Exception):
    """Stands for the kill: raised by the backend when a chosen chunk is submitted."""


class _Relabelled(OnnxRuntimeBackend):
    """The toy ONNX backend describing itself with some :class:`ModelInfo` fields changed."""

    def __init__(self, path: Path, **changes: object) -> None:
        super().__init__(path)
        self.changes = changes

    def _activate(self) -> ModelInfo:
        return dataclasses.replace(super()._activate(), **self.changes)


def _interrupt(folder: Path, model: Path, out: Path, submits: int, *, resume: bool = False) -> None:
    """Run (or resume) until the backend has accepted ``submits`` batches, then interrupt it at the next one."""
    with OnnxRuntimeBackend(model) as backend:
        real, count = backend.submit, [0]

        def submit(images: np.ndarray) -> Pending:
            if count[0] == submits:
                raise _Interrupted
            count[0] += 1
            return real(images)

        backend.submit = submit  # type: ignore[method-assign]
        with pytest.raises(_Interrupted):
            embed_folder(folder, backend, out, batch=BATCH, workers=1, resume=resume)


def _journal_chunks(out: Path) -> list[int]:
    return [json.loads(line)["chunk"] for line in (out / PARTIAL_DIR / "journal.jsonl").read_bytes().splitlines()]


def _rows_match_the_journal(out: Path) -> bool:
    """The journal is the truth: ``rows.f32`` holds exactly the rows its lines list, orphan rows cut away."""
    lines = (out / PARTIAL_DIR / "journal.jsonl").read_bytes().splitlines()
    journaled = sum(len(json.loads(line)["paths"]) for line in lines)
    return (out / PARTIAL_DIR / "rows.f32").stat().st_size == journaled * 8 * 4


def _pair(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ("embeddings.npy", "manifest.json")}


@pytest.fixture
def run(tmp_path: Path) -> dict[str, Path]:
    """An image folder, the toy model, a finished run of both, and an interrupted one (chunks 0 and 1 journaled)."""
    folder, model = make_image_folder(tmp_path / "images"), tmp_path / "toy.onnx"
    make_toy_onnx(model)
    expected, out = tmp_path / "expected", tmp_path / "out"
    with OnnxRuntimeBackend(model) as backend:
        embed_folder(folder, backend, expected, batch=BATCH, workers=1)
    _interrupt(folder, model, out, submits=2)  # chunk 0 = broken.jpg + class0/img0.jpg: the 3rd submit is chunk 2
    assert _journal_chunks(out) == [0, 1] and not (out / "manifest.json").exists()
    return {"folder": folder, "model": model, "expected": expected, "out": out, "tmp": tmp_path}


def _refused(backend: OnnxRuntimeBackend, folder: Path, out: Path, **options: object) -> str:
    with backend, pytest.raises(FrptError) as refusal:
        embed_folder(folder, backend, out, **{"batch": BATCH, "workers": 1, "resume": True, **options})
    return str(refusal.value)


def _differs(out: Path, fields: str) -> str:
    return (
        f"partial run in {out / PARTIAL_DIR} is for a different run (differs in: {fields}): drop --resume to start over"
    )


def test_every_fingerprint_field_refuses_a_resume_of_another_run(run: dict[str, Path]) -> None:
    folder, model, out, tmp = run["folder"], run["model"], run["out"], run["tmp"]
    other_model = tmp / "other.onnx"
    make_toy_onnx(other_model, seed=1)  # same width, other weights
    copied = shutil.copytree(folder, tmp / "copy")  # the same names, sizes and mtimes under another root
    cases = [
        ("model_sha256", OnnxRuntimeBackend(other_model), folder, {}),
        ("root", OnnxRuntimeBackend(model), copied, {}),
        ("batch", OnnxRuntimeBackend(model), folder, {"batch": 3}),
        ("follow_symlinks", OnnxRuntimeBackend(model), folder, {"follow_symlinks": True}),
        ("backend", _Relabelled(model, backend="tensorrt"), folder, {}),
        ("detail", _Relabelled(model, detail=(("providers", "CUDAExecutionProvider"),)), folder, {}),
        ("embedding_dim", _Relabelled(model, embedding_dim=9), folder, {}),
    ]
    for field, backend, root, options in cases:
        assert _refused(backend, root, out, **options) == _differs(out, field), field
    # the file list: one name changed (same count), then one file more
    (copied / "notes.png").rename(copied / "notez.png")
    assert _refused(OnnxRuntimeBackend(model), copied, out) == _differs(out, "files_sha256, root")
    (folder / "class2" / "extra.png").write_bytes((folder / "class2" / "img2.png").read_bytes())
    assert _refused(OnnxRuntimeBackend(model), folder, out) == _differs(out, "file_count, files_sha256")
    (folder / "class2" / "extra.png").unlink()
    state = out / PARTIAL_DIR / "state.json"
    saved = json.loads(state.read_text())
    state.write_text(json.dumps({**saved, "format": "frpt-embed-partial/1"}))  # written by an older layout
    assert _refused(OnnxRuntimeBackend(model), folder, out) == _differs(out, "format")
    state.write_text(json.dumps(saved))
    assert _chunks_then_resume(run) == _pair(run["expected"])  # none of the refusals touched the partial state


def _chunks_then_resume(run: dict[str, Path]) -> dict[str, bytes]:
    assert _journal_chunks(run["out"]) == [0, 1]
    with OnnxRuntimeBackend(run["model"]) as backend:
        report = embed_folder(run["folder"], backend, run["out"], batch=BATCH, workers=1, resume=True)
    assert report.resumed_images == 2 * BATCH and report.count == 9
    return _pair(run["out"])


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("class0/img0.jpg", "size"),  # embedded in chunk 0; same mtime, one byte more
        ("class0/img0.jpg", "mtime"),  # same bytes, one second newer
        ("broken.jpg", "size"),  # skipped in chunk 0 (undecodable): repaired since, it must not stay skipped
    ],
)
def test_resume_refuses_a_finished_file_whose_size_or_mtime_changed(run: dict[str, Path], name: str, change: str):
    path = run["folder"] / name
    stat = path.stat()
    if change == "size":
        with open(path, "ab") as handle:
            handle.write(b"\0")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    else:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert _refused(OnnxRuntimeBackend(run["model"]), run["folder"], run["out"]) == (
        f"--resume: {name} changed since the interrupted run embedded it (size or modification time differs): "
        "drop --resume to start over"
    )


def _tear(out: Path, rows: int) -> None:
    """What a kill in the middle of appending a journal line leaves: the chunk's rows fsync'd, half its line."""
    with open(out / PARTIAL_DIR / "rows.f32", "ab") as handle:
        handle.write(np.full((rows, 8), 7.0, "<f4").tobytes())
    with open(out / PARTIAL_DIR / "journal.jsonl", "ab") as handle:
        handle.write(b'{"chunk":9,"paths":["class')


def test_crash_resume_crash_resume_repairs_the_journal_each_time(run: dict[str, Path]) -> None:
    folder, model, out = run["folder"], run["model"], run["out"]
    _tear(out, rows=5)  # more orphan rows than the next chunk writes over
    _interrupt(folder, model, out, submits=1, resume=True)  # chunk 2 finishes, chunk 3 is interrupted
    journal = (out / PARTIAL_DIR / "journal.jsonl").read_bytes()
    assert _journal_chunks(out) == [0, 1, 2] and journal.endswith(b"\n")  # the torn line was cut before chunk 2's
    assert _rows_match_the_journal(out)
    _tear(out, rows=5)
    _interrupt(folder, model, out, submits=1, resume=True)  # chunk 3 finishes, chunk 4 is interrupted
    assert _journal_chunks(out) == [0, 1, 2, 3] and _rows_match_the_journal(out)
    with OnnxRuntimeBackend(model) as backend:
        report = embed_folder(folder, backend, out, batch=BATCH, workers=1, resume=True)
    assert report.resumed_images == 4 * BATCH and report.count == 9
    assert _pair(out) == _pair(run["expected"])  # orphan rows of both crashes truncated away


@pytest.mark.parametrize("order", [[0, 2, 1], [0, 1, 1], [1, 2], [0, 0]])
def test_resume_refuses_an_out_of_order_journal(run: dict[str, Path], order: list[int]) -> None:
    folder, model, out = run["folder"], run["model"], run["out"]
    _interrupt(folder, model, out, submits=1, resume=True)  # chunks 0, 1, 2 journaled
    journal = out / PARTIAL_DIR / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[k] for k in order))
    assert _refused(OnnxRuntimeBackend(model), folder, out) == (
        f"partial run in {out / PARTIAL_DIR} has an out-of-order journal: drop --resume to start over"
    )
