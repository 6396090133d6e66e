"""What ``frpt-embed`` leaves on disk: final outputs written atomically, and the resumable partial state.

Final outputs in ``OUT``:

* ``embeddings.npy`` — float32 ``[M, D]``, row ``i`` is ``manifest["images"][i]``;
* ``manifest.json`` — deterministic facts only (paths relative to the image root, skipped files with
  reasons, model sha256, backend, precision, ...): a resumed run and an uninterrupted one write both files
  byte for byte the same;
* ``run.json`` — this invocation's timings (wall time, images/s, whether it resumed), kept apart from
  the manifest so timings never break that byte-identity. The manifest names it under ``timings_file``.

Each is written to a temporary file in ``OUT``, fsync'd, then renamed over the target (readers see the
old file or the new one, never half of one).

Partial state in ``OUT/.frpt-embed.partial/`` (removed when the run completes):

* ``state.json`` — the run's fingerprint (file list hash, model sha256, batch, backend, ...); a resume
  with anything different is refused;
* ``rows.f32`` — append-only raw little-endian float32 rows;
* ``journal.jsonl`` — one line per finished chunk ``{"chunk", "paths", "skipped"}``, appended after
  the chunk's rows are fsync'd. The journal is the truth: on resume, rows past the journaled count (a
  crash between the two writes) are truncated away, and a torn last journal line is dropped.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from frpt_runtime.atomic import atomic_write_json
from frpt_runtime.errors import FrptError

__all__ = [
    "EMBEDDINGS_FILE",
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "PARTIAL_DIR",
    "RUN_FILE",
    "ChunkRecord",
    "RunJournal",
    "read_manifest",
]

EMBEDDINGS_FILE = "embeddings.npy"
MANIFEST_FILE = "manifest.json"
RUN_FILE = "run.json"
PARTIAL_DIR = ".frpt-embed.partial"
MANIFEST_FORMAT = "frpt-embeddings/1"


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Load ``OUT/manifest.json``.

    Raises:
        FrptError: missing, unreadable, or not an ``frpt-embeddings`` manifest.
    """
    path = Path(out_dir) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FrptError(f"cannot read {path} ({type(exc).__name__}): run frpt-embed to write it") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise FrptError(f"{path} is not an {MANIFEST_FORMAT} manifest")
    return data


@dataclass
class ChunkRecord:
    """One journaled chunk: its embedded files (rows, in order) and its skipped files with reasons."""

    chunk: int
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_line(self) -> bytes:
        record = {"chunk": self.chunk, "paths": self.paths, "skipped": [list(item) for item in self.skipped]}
        return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class RunJournal:
    """The partial state of one run in ``OUT/.frpt-embed.partial`` (see the module docstring).

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
        """Open the state: continue a matching partial run when ``resume`` (none there: start empty), else start empty.

        Raises:
            FrptError: ``resume`` over partial state from a different run, or inconsistent state.
        """
        state = self.folder / "state.json"
        if resume and state.is_file():
            self._load(state)
        else:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            atomic_write_json(state, self.fingerprint)
            (self.folder / "rows.f32").touch()
            (self.folder / "journal.jsonl").touch()
        self._rows = open(self.folder / "rows.f32", "r+b")  # noqa: SIM115 - held for the run, closed by close()
        self._rows.seek(self.row_count * self.dim * 4)
        self._rows.truncate()
        self._journal = open(self.folder / "journal.jsonl", "ab")  # noqa: SIM115 - likewise

    def _load(self, state: Path) -> None:
        try:
            saved = json.loads(state.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = None
        if saved != self.fingerprint:
            differ = sorted(
                k for k in self.fingerprint if not isinstance(saved, dict) or saved.get(k) != self.fingerprint[k]
            )
            raise FrptError(
                f"partial run in {self.folder} is for a different run (differs in: {', '.join(differ) or 'format'}): "
                "drop --resume to start over"
            )
        journal = self.folder / "journal.jsonl"
        data = journal.read_bytes()
        valid = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn last line: the crash hit mid-append
            try:
                record = json.loads(line)
            except ValueError:
                raise FrptError(
                    f"partial run in {self.folder} has a corrupt journal: drop --resume to start over"
                ) from None
            if record["chunk"] != len(self.records):
                raise FrptError(
                    f"partial run in {self.folder} has an out-of-order journal: drop --resume to start over"
                )
            self.records.append(
                ChunkRecord(record["chunk"], record["paths"], [tuple(item) for item in record["skipped"]])
            )
            valid += len(line)
        if valid != len(data):
            with open(journal, "r+b") as handle:
                handle.truncate(valid)
        rows_size = (self.folder / "rows.f32").stat().st_size
        if rows_size < self.row_count * self.dim * 4:
            raise FrptError(f"partial run in {self.folder} lost rows its journal lists: drop --resume to start over")

    def append(self, record: ChunkRecord, rows: np.ndarray) -> None:
        """Persist one chunk: rows first (fsync), then its journal line (fsync).

        Args:
            record: the chunk's files.
            rows: float32 ``[len(record.paths), D]``.
        """
        assert self._rows is not None and self._journal is not None
        if rows.shape != (len(record.paths), self.dim):
            raise ValueError(f"rows {rows.shape} do not match {len(record.paths)} paths x D={self.dim}")
        self._rows.write(np.ascontiguousarray(rows, dtype="<f4").tobytes())
        self._rows.flush()
        os.fsync(self._rows.fileno())
        self._journal.write(record.to_line())
        self._journal.flush()
        os.fsync(self._journal.fileno())
        self.records.append(record)

    def embeddings(self) -> np.ndarray:
        """All journaled rows as float32 ``[row_count, D]``."""
        count = self.row_count
        data = np.fromfile(self.folder / "rows.f32", dtype="<f4", count=count * self.dim)
        return data.reshape(count, self.dim).astype(np.float32, copy=False)

    def close(self) -> None:
        for handle in (self._rows, self._journal):
            if handle is not None:
                handle.close()
        self._rows = self._journal = None

    def discard(self) -> None:
        """Remove the partial state (after the final outputs are in place)."""
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)
