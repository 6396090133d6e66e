"""The kill -9 + ``--resume`` trial (issue 9 acceptance): ``frpt-embed`` killed right after each of its durable
writes in turn -- every fsync and replace of the lock, ``state.json``, each chunk's ``rows.f32`` and
``journal.jsonl``, ``embeddings.npy``, ``run.json``, ``manifest.json`` and the folders -- then resumed; every point
must end byte-identical to an uninterrupted run or refuse ``--resume`` in one line and then restart cleanly.

The same trial by hand (JSON report on stdout)::

    python tests/crash_harness.py trial IMAGES MODEL WORKDIR --batch-size 1 --workers 2
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_toys import make_image_folder, make_toy_onnx

HARNESS = Path(__file__).with_name("crash_harness.py")


@pytest.mark.slow
def test_every_durable_write_is_a_survivable_kill_point(tmp_path: Path) -> None:
    model = tmp_path / "toy.onnx"
    make_toy_onnx(model)
    folder = make_image_folder(tmp_path / "images")  # 12 files, 3 undecodable: batch 1 gives 12 chunks
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(HARNESS), "trial", str(folder), str(model), str(tmp_path / "work")]
    done = subprocess.run(
        [*cmd, "--batch-size", "1", "--workers", "2"], capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    points = report["points"]
    names = {name for _, name in report["events"]}
    assert {".frpt-embed.lock", "state.json", "rows.f32", "journal.jsonl", "embeddings.npy", "run.json"} <= names
    assert "manifest.json" in names and len(points) >= 30 and all(point["killed"] for point in points)
    assert report["failed"] == [], report["failed"]
    assert report["identical"] + report["restarted"] == len(points)
    print(
        f"kill trial: {len(points)} kill points, {report['identical']} byte-identical, {report['restarted']} restarted"
    )
