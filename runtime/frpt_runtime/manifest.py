"""What ``frpt-embed`` leaves in ``OUT``, the commit protocol that writes it, and the one reader that checks it.

Final outputs in ``OUT``:

* ``embeddings.npy`` -- float32 ``[M, D]``, row ``i`` is ``manifest["images"][i]``;
* ``run.json`` -- this invocation's timings (wall time, images/s, whether it resumed), kept apart from the
  manifest so timings never break its byte-identity;
* ``manifest.json`` -- deterministic facts only (paths relative to the image root, skipped paths with reasons,
  model sha256, backend, precision, config, batch) and ``embeddings_sha256``, the SHA-256 of the
  ``embeddings.npy`` it describes: a resumed run and an uninterrupted one write both files byte for byte the same.

**Commit protocol** (:func:`write_outputs`): ``embeddings.npy``, then ``run.json``, then ``manifest.json``, each
written atomically (temp file beside it, fsync, rename, fsync the folder). The manifest is the commit record:
written last, it names the hash of the embeddings file. A kill between two renames leaves a new
``embeddings.npy`` beside an old manifest, which :func:`read_embeddings` -- the one reader (``frpt-eval
--embeddings``, ``frpt-embed --resume``, the search index) -- refuses in one line; the run's partial state is
still in ``OUT`` then, so ``--resume`` finishes it. Temp files a kill left are removed by the next run
(:func:`remove_stale_outputs`, under the folder's lock).

Paths are stored as the OS names them: a name that is not valid UTF-8 is kept in Python's surrogateescape form
(PEP 383), which the JSON holds as ``\\udcXX`` escapes; ``os.fsencode(name)`` gives the original bytes back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from frpt_runtime.atomic import atomic_write, atomic_write_json, remove_stale_temps
from frpt_runtime.digests import HashingWriter, sha256_file
from frpt_runtime.errors import FrptError
from frpt_runtime.fields import (
    choice,
    hex_digest,
    integer,
    json_value,
    mapping,
    read_fields,
    record,
    sequence,
    string,
)
from frpt_runtime.image_files import printable
from frpt_runtime.parity import PRECISIONS

__all__ = [
    "EMBEDDINGS_FILE",
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "RUN_FILE",
    "read_embeddings",
    "read_manifest",
    "remove_stale_outputs",
    "write_outputs",
]

EMBEDDINGS_FILE = "embeddings.npy"
MANIFEST_FILE = "manifest.json"
RUN_FILE = "run.json"
MANIFEST_FORMAT = "frpt-embeddings/2"
RERUN = "run frpt-embed again (--resume finishes an interrupted run)"

_SPEC = {
    "toolkit_version": string(),
    "root": string(),
    "count": integer(0),
    "embedding_dim": integer(1),
    "embeddings_sha256": hex_digest(),
    "images": sequence(string()),
    "skipped": sequence(record({"path": string(), "reason": string()})),
    "model": record({"path": string(), "sha256": hex_digest()}),
    "backend": string(),
    "backend_detail": mapping(string(), string()),
    "family": string(),
    "precision": choice(PRECISIONS),
    "lowering": string(),
    "config": mapping(string(), json_value()),
    "batch": integer(1),
    "timings_file": string(),
}


def write_outputs(
    out: Path, embeddings: np.ndarray, manifest: dict[str, Any], timings: dict[str, Any]
) -> dict[str, Any]:
    """Commit a finished run: ``embeddings.npy``, ``run.json``, then ``manifest.json`` (with the embeddings' hash).

    Args:
        out: the output folder (locked by the caller).
        embeddings: float32 ``[M, D]``.
        manifest: every manifest field but ``embeddings_sha256``.
        timings: the ``run.json`` content.

    Returns:
        The manifest as written.
    """
    digest: dict[str, str] = {}

    def save(handle: Any) -> None:
        writer = HashingWriter(handle)  # the hash of exactly the bytes written
        np.save(writer, embeddings, allow_pickle=False)
        digest["sha256"] = writer.hexdigest()

    atomic_write(out / EMBEDDINGS_FILE, save)
    atomic_write_json(out / RUN_FILE, timings)
    committed = {**manifest, "embeddings_sha256": digest["sha256"]}
    atomic_write_json(out / MANIFEST_FILE, committed)
    return committed


def remove_stale_outputs(out: Path) -> None:
    """Remove the temp files killed writes of the final outputs left in ``out`` (hold its lock)."""
    for name in (EMBEDDINGS_FILE, RUN_FILE, MANIFEST_FILE):
        remove_stale_temps(out / name)


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check ``OUT/manifest.json`` (types and ranges of every field).

    Raises:
        FrptError: missing, unreadable, not an ``frpt-embeddings`` manifest of this format, or a malformed field.
    """
    path = Path(out_dir) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FrptError(f"cannot read {path} ({type(exc).__name__}): run frpt-embed to write it") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise FrptError(f"{path} is not an {MANIFEST_FORMAT} manifest (format {found!r}): run frpt-embed again")
    read_fields(data, _SPEC, str(path), "run frpt-embed again")
    if data["count"] != len(data["images"]):
        raise FrptError(f"{path}: count {data['count']} but {len(data['images'])} images listed: run frpt-embed again")
    return data


def read_embeddings(out_dir: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """The one reader of a finished ``frpt-embed`` output: ``(embeddings, manifest)``, checked as a pair.

    Returns:
        float32 ``[M, D]`` rows (row ``i`` is ``manifest["images"][i]``) and the checked manifest.

    Raises:
        FrptError: a missing or malformed manifest; an ``embeddings.npy`` that is missing, is not the file the
            manifest describes (its sha256 differs: an interrupted or concurrent run), or does not have the shape
            the manifest gives; a row holding NaN or Inf.
    """
    out = Path(out_dir)
    manifest = read_manifest(out)
    path = out / EMBEDDINGS_FILE
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise FrptError(f"cannot read {path} ({type(exc).__name__}) that {MANIFEST_FILE} describes: {RERUN}") from None
    if digest != manifest["embeddings_sha256"]:
        raise FrptError(
            f"{path} is not the file {MANIFEST_FILE} describes (sha256 differs: an interrupted run left the pair "
            f"mismatched, or a file was replaced): {RERUN}"
        )
    try:
        rows = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise FrptError(f"cannot read {path} ({type(exc).__name__}): {RERUN}") from None
    expected = (manifest["count"], manifest["embedding_dim"])
    if not isinstance(rows, np.ndarray) or rows.dtype != np.float32 or rows.shape != expected:
        raise FrptError(f"{path} is not float32 {list(expected)} as {MANIFEST_FILE} says: {RERUN}")
    bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    if bad.size:
        name = printable(manifest["images"][bad[0]])
        raise FrptError(
            f"{path} holds NaN or Inf in {bad.size} rows (first: row {bad[0]}, {name}): the model produced "
            "non-finite embeddings; check it with frpt-verify"
        )
    return rows, manifest
