"""In-process checks of the resume journal, the atomic writes and the manifest reader (issue 15, coverage part).

The kill trial and the console-script tests prove these files end to end, but in child processes; these tests
call the library directly, so each refusal, each repair and each cleanup is pinned by its message and by the
files it leaves behind.
"""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from frpt_runtime import atomic
from frpt_runtime.atomic import atomic_write, atomic_write_json, disk_full_error, remove_stale_temps
from frpt_runtime.errors import FrptError
from frpt_runtime.journal import (
    JOURNAL_FILE,
    PARTIAL_DIR,
    ROWS_FILE,
    STATE_FILE,
    ChunkRecord,
    RunJournal,
    first_changed_file,
)
from frpt_runtime.manifest import MANIFEST_FILE, MANIFEST_FORMAT, read_manifest

FINGERPRINT = {"format": "frpt-embed-partial/2", "model": "a" * 64, "batch": 2, "files": "f" * 64}
DIM = 3


def _rows(count: int, start: float = 0.0) -> np.ndarray:
    return (np.arange(count * DIM, dtype=np.float32) + start).reshape(count, DIM)


def _record(chunk: int, names: list[str]) -> ChunkRecord:
    return ChunkRecord(chunk, names, [], [(10 + i, 1000 + i) for i in range(len(names))])


def _run(tmp_path, chunks: int, fingerprint=FINGERPRINT) -> RunJournal:
    """A fresh journal holding ``chunks`` chunks of two rows each, closed (as a crash leaves it)."""
    journal = RunJournal(tmp_path, dict(fingerprint), DIM)
    journal.start(resume=False)
    for k in range(chunks):
        journal.append(_record(k, [f"c{k}/a.jpg", f"c{k}/b.jpg"]), _rows(2, start=10.0 * k))
    journal.close()
    return journal


def _resume(tmp_path, fingerprint=FINGERPRINT) -> RunJournal:
    journal = RunJournal(tmp_path, dict(fingerprint), DIM)
    journal.start(resume=True)
    return journal


# --- atomic writes ------------------------------------------------------------------------------------------


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")

    def half_then_fail(handle):
        handle.write(b"half of the new ")
        raise ValueError("encoder bug")

    with pytest.raises(ValueError, match="encoder bug"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_failed_write_with_an_os_error_propagates_it_unchanged(tmp_path):
    target = tmp_path / "out.bin"

    def io_error(handle):
        handle.write(b"x")
        raise OSError(errno.EIO, "input/output error")

    with pytest.raises(OSError) as info:
        atomic_write(target, io_error)
    assert info.value.errno == errno.EIO and not isinstance(info.value, FrptError)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_full_disk_is_one_line_naming_the_path(tmp_path, code):
    target = tmp_path / "embeddings.npy"

    def full(handle):
        raise OSError(code, os.strerror(code))

    with pytest.raises(FrptError, match=f"^disk full at {target}: free space") as info:
        atomic_write(target, full)
    assert info.value.__cause__ is None and list(tmp_path.iterdir()) == []


def test_disk_full_without_errno_is_decided_by_the_free_space(tmp_path, monkeypatch):
    no_errno = OSError("123 requested and 0 written")

    class Stat:
        f_frsize = 4096

        def __init__(self, blocks):
            self.f_bavail = blocks

    monkeypatch.setattr(atomic.os, "statvfs", lambda path: Stat(10))  # 40 KiB free: full
    assert "disk full at" in str(disk_full_error(tmp_path / "x", no_errno))
    monkeypatch.setattr(atomic.os, "statvfs", lambda path: Stat(1 << 20))  # 4 GiB free: another failure
    assert disk_full_error(tmp_path / "x", no_errno) is None
    assert disk_full_error(tmp_path / "x", OSError(errno.EACCES, "denied")) is None  # an errno that is not ENOSPC

    def unreadable(path):
        raise OSError(errno.ENOENT, "gone")

    monkeypatch.setattr(atomic.os, "statvfs", unreadable)
    assert disk_full_error(tmp_path / "x", no_errno) is None


def test_remove_stale_temps_removes_only_the_targets_temps(tmp_path):
    target = tmp_path / "manifest.json"
    atomic_write_json(target, {"a": 1})
    stale = [tmp_path / ".manifest.json.123.tmp", tmp_path / ".manifest.json.99999.tmp"]
    keep = [tmp_path / ".run.json.123.tmp", tmp_path / "manifest.json.bak"]
    for item in stale + keep:
        item.write_text("x")
    assert remove_stale_temps(target) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["manifest.json", *(k.name for k in keep)])
    assert json.loads(target.read_text()) == {"a": 1}


# --- the journal --------------------------------------------------------------------------------------------


def test_resume_continues_from_the_journaled_rows(tmp_path):
    _run(tmp_path, chunks=2)
    journal = _resume(tmp_path)
    try:
        assert (journal.next_chunk, journal.row_count) == (2, 4)
        assert [r.paths for r in journal.records] == [["c0/a.jpg", "c0/b.jpg"], ["c1/a.jpg", "c1/b.jpg"]]
        assert journal.records[1].stats == [(10, 1000), (11, 1001)]
        np.testing.assert_array_equal(journal.embeddings(), np.concatenate([_rows(2), _rows(2, start=10.0)]))
        journal.append(_record(2, ["c2/a.jpg"]), _rows(1, start=20.0))
        np.testing.assert_array_equal(journal.embeddings()[4], _rows(1, start=20.0)[0])
    finally:
        journal.close()


def test_resume_without_state_starts_over(tmp_path):
    _run(tmp_path, chunks=1)
    (tmp_path / PARTIAL_DIR / STATE_FILE).unlink()
    journal = _resume(tmp_path)
    journal.close()
    assert journal.row_count == 0 and (tmp_path / PARTIAL_DIR / ROWS_FILE).stat().st_size == 0
    assert json.loads((tmp_path / PARTIAL_DIR / STATE_FILE).read_text()) == FINGERPRINT


@pytest.mark.parametrize("field", sorted(FINGERPRINT))
def test_resume_of_another_run_names_the_differing_field(tmp_path, field):
    _run(tmp_path, chunks=1)
    other = dict(FINGERPRINT, **{field: "changed"})
    with pytest.raises(FrptError, match=rf"is for a different run \(differs in: {field}\): drop --resume"):
        _resume(tmp_path, other)


def test_unreadable_state_is_refused_naming_every_field(tmp_path):
    _run(tmp_path, chunks=1)
    (tmp_path / PARTIAL_DIR / STATE_FILE).write_text("{not json")
    with pytest.raises(FrptError, match=r"differs in: batch, files, format, model\): drop --resume"):
        _resume(tmp_path)
    (tmp_path / PARTIAL_DIR / STATE_FILE).write_text("[1, 2]")  # JSON, but not an object
    with pytest.raises(FrptError, match=r"differs in: batch, files, format, model\)"):
        _resume(tmp_path)


def test_state_with_an_extra_field_is_another_format(tmp_path):
    _run(tmp_path, chunks=1)
    (tmp_path / PARTIAL_DIR / STATE_FILE).write_text(json.dumps(dict(FINGERPRINT, extra=1)))
    with pytest.raises(FrptError, match=r"differs in: format\)"):
        _resume(tmp_path)


def test_lost_rows_are_refused(tmp_path):
    _run(tmp_path, chunks=2)
    rows = tmp_path / PARTIAL_DIR / ROWS_FILE
    with open(rows, "r+b") as handle:
        handle.truncate(4 * DIM * 4 - 1)  # one byte short of the four journaled rows
    with pytest.raises(FrptError, match="lost rows its journal lists: drop --resume"):
        _resume(tmp_path)
    rows.unlink()
    with pytest.raises(FrptError, match="lost rows its journal lists"):
        _resume(tmp_path)


def test_missing_rows_file_with_an_empty_journal_is_recreated(tmp_path):
    _run(tmp_path, chunks=0)
    (tmp_path / PARTIAL_DIR / ROWS_FILE).unlink()
    (tmp_path / PARTIAL_DIR / JOURNAL_FILE).unlink()  # killed before any chunk: both may be missing
    journal = _resume(tmp_path)
    journal.close()
    assert journal.row_count == 0
    assert (tmp_path / PARTIAL_DIR / ROWS_FILE).is_file() and (tmp_path / PARTIAL_DIR / JOURNAL_FILE).is_file()


def test_rows_past_the_journal_are_truncated_on_resume(tmp_path):
    _run(tmp_path, chunks=1)
    rows = tmp_path / PARTIAL_DIR / ROWS_FILE
    with open(rows, "ab") as handle:  # a kill between the rows' append and the journal line
        handle.write(_rows(2, start=99.0).tobytes())
    journal = _resume(tmp_path)
    journal.close()
    assert rows.stat().st_size == 2 * DIM * 4
    np.testing.assert_array_equal(journal.embeddings(), _rows(2))


def test_torn_last_line_is_cut_and_a_second_crash_still_resumes(tmp_path):
    _run(tmp_path, chunks=2)
    path = tmp_path / PARTIAL_DIR / JOURNAL_FILE
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"chunk":2,"paths":["c2/a')  # the crash hit mid-append
    journal = _resume(tmp_path)
    assert journal.row_count == 4 and path.read_bytes() == whole
    journal.append(_record(2, ["c2/a.jpg", "c2/b.jpg"]), _rows(2, start=20.0))
    journal.close()
    with open(path, "ab") as handle:  # second crash, again mid-line
        handle.write(b'{"chunk":3')
    again = _resume(tmp_path)
    again.close()
    assert again.next_chunk == 3 and [r.chunk for r in again.records] == [0, 1, 2]
    np.testing.assert_array_equal(again.embeddings()[4:], _rows(2, start=20.0))


@pytest.mark.parametrize(
    "line",
    [b"not json\n", b'{"chunk": 1}\n', b'{"chunk":-1,"paths":[],"skipped":[],"stats":[]}\n', b"[]\n"],
    ids=["not-json", "missing-fields", "negative-chunk", "not-an-object"],
)
def test_corrupt_journal_line_is_refused(tmp_path, line):
    _run(tmp_path, chunks=1)
    with open(tmp_path / PARTIAL_DIR / JOURNAL_FILE, "ab") as handle:
        handle.write(line)
    with pytest.raises(FrptError, match="has a corrupt journal: drop --resume"):
        _resume(tmp_path)


def test_out_of_order_journal_is_refused(tmp_path):
    _run(tmp_path, chunks=1)
    with open(tmp_path / PARTIAL_DIR / JOURNAL_FILE, "ab") as handle:
        handle.write(_record(2, ["c2/a.jpg"]).to_line())  # chunk 1 is missing
    with pytest.raises(FrptError, match="has an out-of-order journal: drop --resume"):
        _resume(tmp_path)


def test_row_shape_mismatch_is_a_caller_bug_and_writes_nothing(tmp_path):
    journal = RunJournal(tmp_path, dict(FINGERPRINT), DIM)
    journal.start(resume=False)
    try:
        with pytest.raises(ValueError, match=r"rows \(2, 4\) do not match 2 paths x D=3"):
            journal.append(_record(0, ["a", "b"]), np.zeros((2, 4), np.float32))
        with pytest.raises(ValueError, match=r"rows \(1, 3\) do not match 2 paths x D=3"):
            journal.append(_record(0, ["a", "b"]), np.zeros((1, 3), np.float32))
    finally:
        journal.close()
    assert journal.records == []
    assert (tmp_path / PARTIAL_DIR / ROWS_FILE).stat().st_size == 0
    assert (tmp_path / PARTIAL_DIR / JOURNAL_FILE).stat().st_size == 0


def test_changed_file_names_the_first_changed_one(tmp_path):
    _run(tmp_path, chunks=2)
    journal = _resume(tmp_path)
    journal.close()
    names = ["c0/a.jpg", "c0/b.jpg", "c1/a.jpg", "c1/b.jpg", "new.jpg"]
    stats = [(10, 1000), (11, 1001), (10, 1000), (11, 1001), (5, 5)]
    assert first_changed_file(journal.records, names, stats, batch=2) is None  # the unjournaled file is not checked
    assert first_changed_file(journal.records, names, [*stats[:3], (11, 2001), stats[4]], batch=2) == "c1/b.jpg"
    assert first_changed_file(journal.records, names, [stats[0], (12, 1001), *stats[2:]], batch=2) == "c0/b.jpg"


def test_full_disk_during_an_append_is_one_line(tmp_path, monkeypatch):
    journal = RunJournal(tmp_path, dict(FINGERPRINT), DIM)
    journal.start(resume=False)
    failure = {"errno": errno.ENOSPC}

    def failing_fsync(fd):
        raise OSError(failure["errno"], os.strerror(failure["errno"]))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    try:
        with pytest.raises(FrptError, match=rf"^disk full at {tmp_path / PARTIAL_DIR / ROWS_FILE}: free space"):
            journal.append(_record(0, ["a"]), _rows(1))
        failure["errno"] = errno.EIO
        with pytest.raises(OSError) as info:
            journal.append(_record(0, ["a"]), _rows(1))
        assert info.value.errno == errno.EIO and not isinstance(info.value, FrptError)
    finally:
        monkeypatch.undo()
        journal.close()
    assert journal.records == []


def test_discard_removes_the_partial_folder(tmp_path):
    journal = _run(tmp_path, chunks=1)
    journal.discard()
    assert not (tmp_path / PARTIAL_DIR).exists()


def test_chunk_record_round_trips_odd_names():
    record = ChunkRecord(3, ["ü/\udcff.jpg", "b c.png"], [("bad.jpg", "zero-byte file")], [(1, 2), (3, 4)])
    line = record.to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert ChunkRecord.from_line(line) == record


# --- the manifest reader ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{broken", r"cannot read .*manifest.json \(JSONDecodeError\): run frpt-embed to write it"),
        ("[1, 2]", r"is not an frpt-embeddings/2 manifest \(format None\): run frpt-embed again"),
        ('{"format": "frpt-embeddings/1"}', r"is not an frpt-embeddings/2 manifest \(format 'frpt-embeddings/1'\)"),
        (json.dumps({"format": MANIFEST_FORMAT}), r"manifest.json: lacks the fields toolkit_version, root, .*again"),
    ],
    ids=["not-json", "not-an-object", "other-format", "no-fields"],
)
def test_not_a_manifest_is_refused_in_one_line(tmp_path, content, message):
    (tmp_path / MANIFEST_FILE).write_text(content)
    with pytest.raises(FrptError, match=message) as info:
        read_manifest(tmp_path)
    assert "\n" not in str(info.value)


def test_missing_manifest_says_how_to_write_it(tmp_path):
    with pytest.raises(FrptError, match=r"cannot read .*manifest.json \(FileNotFoundError\): run frpt-embed"):
        read_manifest(tmp_path)


_VALID_LINE = {"chunk": 1, "paths": ["a.jpg"], "skipped": [["b.jpg", "zero-byte file"]], "stats": [[1, 2], [0, 4]]}


@pytest.mark.parametrize("field", sorted(_VALID_LINE))
def test_a_journal_line_missing_any_field_is_corrupt(tmp_path, field):
    _run(tmp_path, chunks=1)
    line = {k: v for k, v in _VALID_LINE.items() if k != field}
    with open(tmp_path / PARTIAL_DIR / JOURNAL_FILE, "ab") as handle:
        handle.write(json.dumps(line).encode() + b"\n")
    with pytest.raises(FrptError, match="has a corrupt journal: drop --resume"):
        _resume(tmp_path)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("chunk", "1"),
        ("chunk", True),
        ("paths", "a.jpg"),
        ("paths", [1]),
        ("skipped", [["b.jpg"]]),
        ("skipped", [["b.jpg", 3]]),
        ("stats", [[1, 2, 3]]),
        ("stats", [[-1, 2]]),
        ("stats", [[1.5, 2]]),
    ],
)
def test_a_journal_line_with_a_malformed_field_is_corrupt(tmp_path, field, value):
    _run(tmp_path, chunks=1)
    with open(tmp_path / PARTIAL_DIR / JOURNAL_FILE, "ab") as handle:
        handle.write(json.dumps({**_VALID_LINE, field: value}).encode() + b"\n")
    with pytest.raises(FrptError, match="has a corrupt journal"):
        _resume(tmp_path)


def test_the_valid_line_of_these_tests_is_accepted(tmp_path):
    _run(tmp_path, chunks=1)
    with open(tmp_path / PARTIAL_DIR / ROWS_FILE, "ab") as handle:
        handle.write(_rows(1).tobytes())
    with open(tmp_path / PARTIAL_DIR / JOURNAL_FILE, "ab") as handle:
        handle.write(json.dumps(_VALID_LINE).encode() + b"\n")
    journal = _resume(tmp_path)
    journal.close()
    assert journal.records[1] == ChunkRecord(1, ["a.jpg"], [("b.jpg", "zero-byte file")], [(1, 2), (0, 4)])  # size 0


def test_resume_removes_the_temp_file_a_killed_state_write_left(tmp_path):
    _run(tmp_path, chunks=1)
    stale = tmp_path / PARTIAL_DIR / f".{STATE_FILE}.4242.tmp"
    stale.write_text('{"half": ')
    journal = _resume(tmp_path)
    journal.close()
    assert not stale.exists() and journal.row_count == 2
