"""The resumable partial state of one ``frpt-embed`` run, in ``OUT/.frpt-embed.partial/`` (torch-free).

Files, in the order they are written; every crash point between two steps leaves a state the next run can use:

1. **start** -- the folder is removed and recreated, empty ``rows.f32`` and ``journal.jsonl`` are created and the
   folder fsync'd, then ``state.json`` (the run's fingerprint: file list hash, model sha256, batch, backend, ...)
   is written atomically, *last*: a partial folder without ``state.json`` is never resumed from (``--resume``
   starts over in it), and one with it always holds both other files.
2. **per chunk** -- the chunk's rows are appended to ``rows.f32`` (raw little-endian float32) and fsync'd, then
   its journal line is appended to ``journal.jsonl`` and fsync'd. The journal is the truth: on resume, rows past
   the journaled count (a kill between the two writes) are truncated away and a torn last line is dropped.
3. **discard**, after the final outputs are committed -- ``state.json`` is removed first (and the folder
   fsync'd), then the rest.

A journal line is ``{"chunk": k, "paths": [...], "skipped": [[path, reason], ...], "stats": [[size, mtime_ns],
...]}``: the chunk's embedded files (its rows, in order), its undecodable files, and the size and modification
time of every file of the chunk in listing order, so a resume can tell that a finished file changed since
(:meth:`RunJournal.changed_file`). A ``journal.jsonl`` missing beside ``state.json`` means no chunk finished;
``rows.f32`` missing while the journal lists rows is refused with the fix (drop ``--resume``).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from frpt_runtime.atomic import atomic_write_json, disk_full_error, fsync_dir, remove_stale_temps, utf8_json
from frpt_runtime.errors import FrptError
from frpt_runtime.fields import FieldError, check_fields, integer, sequence, string

__all__ = ["PARTIAL_DIR", "PARTIAL_FORMAT", "STATE_FILE", "ChunkRecord", "RunJournal"]

PARTIAL_DIR = ".frpt-embed.partial"
PARTIAL_FORMAT = "frpt-embed-partial/2"  # the fingerprint's "format": state of another layout is never resumed
STATE_FILE, ROWS_FILE, JOURNAL_FILE = "state.json", "rows.f32", "journal.jsonl"
RESTART = "drop --resume to start over"

_LINE_SPEC = {
    "chunk": integer(0),
    "paths": sequence(string()),
    "skipped": sequence(sequence(string(), length=2)),
    "stats": sequence(sequence(integer(0), length=2)),
}


@dataclass
class ChunkRecord:
    """One journaled chunk.

    Attributes:
        chunk: its index ``k``.
        paths: its embedded files (its rows, in order).
        skipped: ``(path, reason)`` of its files that could not be decoded.
        stats: ``(size, mtime_ns)`` of every file of the chunk, in listing order.
    """

    chunk: int
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    stats: list[tuple[int, int]] = field(default_factory=list)

    def to_line(self) -> bytes:
        record = {
            "chunk": self.chunk,
            "paths": self.paths,
            "skipped": [list(item) for item in self.skipped],
            "stats": [list(item) for item in self.stats],
        }
        return utf8_json(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")

    @classmethod
    def from_line(cls, line: bytes) -> ChunkRecord:
        """Parse one journal line; raises ValueError (or FieldError) when it is not a valid record."""
        data = check_fields(json.loads(line), _LINE_SPEC)
        skipped = [(path, reason) for path, reason in data["skipped"]]
        return cls(data["chunk"], list(data["paths"]), skipped, [(size, mtime) for size, mtime in data["stats"]])


class RunJournal:
    """The partial state of one run (see the module docstring).

    Args:
        out_dir: the run's output folder.
        fingerprint: JSON-ready facts that must match for a resume to be valid.
        dim: embedding width ``D`` (row size in ``rows.f32``).
    """

    def __init__(self, out_dir: Path, fingerprint: dict[str, Any], dim: int) -> None:
        self.folder = out_dir / PARTIAL_DIR
        self.fingerprint = fingerprint
        self.dim = dim
        self.records: list[ChunkRecord] = []
        self._rows: BinaryIO | None = None
        self._journal: BinaryIO | None = None

    @property
    def row_count(self) -> int:
        return sum(len(record.paths) for record in self.records)

    @property
    def next_chunk(self) -> int:
        return len(self.records)

    def start(self, resume: bool) -> None:
        """Continue a matching partial run when ``resume`` and one is there, else start an empty one.

        Raises:
            FrptError: ``resume`` over partial state of a different run, or state that cannot be continued.
        """
        if resume and (self.folder / STATE_FILE).is_file():
            self._load()
        else:
            self._create()
        self._rows = open(self.folder / ROWS_FILE, "r+b")  # noqa: SIM115 - held for the run, closed by close()
        self._rows.seek(self.row_count * self.dim * 4)
        self._rows.truncate()
        self._journal = open(self.folder / JOURNAL_FILE, "ab")  # noqa: SIM115 - likewise

    def _create(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        for name in (ROWS_FILE, JOURNAL_FILE):
            (self.folder / name).touch()
        fsync_dir(self.folder)
        atomic_write_json(self.folder / STATE_FILE, self.fingerprint)  # last: the folder is now a partial run

    def _load(self) -> None:
        remove_stale_temps(self.folder / STATE_FILE)
        try:
            saved = json.loads((self.folder / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = None
        if saved != self.fingerprint:
            differ = sorted(
                k for k in self.fingerprint if not isinstance(saved, dict) or saved.get(k) != self.fingerprint[k]
            )
            raise FrptError(
                f"partial run in {self.folder} is for a different run (differs in: {', '.join(differ) or 'format'}): "
                f"{RESTART}"
            )
        self._read_journal()
        rows = self.folder / ROWS_FILE
        if not rows.is_file() and self.row_count == 0:
            rows.touch()
        if not rows.is_file() or rows.stat().st_size < self.row_count * self.dim * 4:
            raise FrptError(f"partial run in {self.folder} lost rows its journal lists: {RESTART}")

    def _read_journal(self) -> None:
        journal = self.folder / JOURNAL_FILE
        if not journal.is_file():  # killed before any chunk was journaled: nothing to continue from
            journal.touch()
        data = journal.read_bytes()
        valid = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn last line: the crash hit mid-append
            try:
                record = ChunkRecord.from_line(line)
            except (ValueError, FieldError):
                raise FrptError(f"partial run in {self.folder} has a corrupt journal: {RESTART}") from None
            if record.chunk != len(self.records):
                raise FrptError(f"partial run in {self.folder} has an out-of-order journal: {RESTART}")
            self.records.append(record)
            valid += len(line)
        if valid != len(data):
            with open(journal, "r+b") as handle:
                handle.truncate(valid)

    def changed_file(self, names: list[str], stats: list[tuple[int, int]], batch: int) -> str | None:
        """The first journaled file whose ``(size, mtime_ns)`` now differs from when it was embedded, or ``None``.

        Args:
            names, stats: every file of the run in listing order, and its current ``(size, mtime_ns)`` (the same
                files the journal's run listed: the fingerprint, checked first, hashes the names).
            batch: files per chunk.
        """
        for record in self.records:
            start = record.chunk * batch
            for position, recorded in enumerate(record.stats, start):
                if tuple(recorded) != tuple(stats[position]):
                    return names[position]
        return None

    def append(self, record: ChunkRecord, rows: np.ndarray) -> None:
        """Persist one chunk: rows first (fsync), then its journal line (fsync).

        Args:
            record: the chunk's files.
            rows: float32 ``[len(record.paths), D]``.

        Raises:
            FrptError: the disk filled up.
        """
        assert self._rows is not None and self._journal is not None
        if rows.shape != (len(record.paths), self.dim):
            raise ValueError(f"rows {rows.shape} do not match {len(record.paths)} paths x D={self.dim}")
        _append_durably(self._rows, np.ascontiguousarray(rows, dtype="<f4").tobytes())
        _append_durably(self._journal, record.to_line())
        self.records.append(record)

    def embeddings(self) -> np.ndarray:
        """All journaled rows as float32 ``[row_count, D]``."""
        count = self.row_count
        data = np.fromfile(self.folder / ROWS_FILE, dtype="<f4", count=count * self.dim)
        return data.reshape(count, self.dim).astype(np.float32, copy=False)

    def close(self) -> None:
        for handle in (self._rows, self._journal):
            if handle is not None:
                handle.close()
        self._rows = self._journal = None

    def discard(self) -> None:
        """Remove the partial state (after the final outputs are committed): ``state.json`` first."""
        self.close()
        (self.folder / STATE_FILE).unlink(missing_ok=True)
        fsync_dir(self.folder)
        shutil.rmtree(self.folder, ignore_errors=True)


def _append_durably(handle: BinaryIO, data: bytes) -> None:
    """Append ``data`` and fsync; a full disk becomes one line naming the file."""
    try:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    except OSError as exc:
        full = disk_full_error(Path(handle.name), exc)
        if full is not None:
            raise full from None
        raise
