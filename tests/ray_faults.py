"""Faults for the Ray tests, installed in Ray's worker processes by ``worker_process_setup_hook`` (a test kit).

Product code carries no fault hooks: a test connects to Ray with :func:`runtime_env` and every worker process of
that job runs :func:`install` before its first task. ``FRPT_RAY_FAULTS`` holds ``;``-separated faults:

* ``kill-embed:N:MARKER`` — the N-th batch an actor process embeds SIGKILLs that process (mid-shard);
* ``kill-decode:NAME:MARKER`` — decoding the file named NAME SIGKILLs its decode worker process;
* ``fail-decode:NAME`` — decoding the file named NAME raises RuntimeError, every time (a chunk that cannot pass).

A kill happens once per MARKER: the marker file is created first with ``O_EXCL``, so exactly one process dies and
the test can check that it did.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

ENV = "FRPT_RAY_FAULTS"


def runtime_env(faults: str) -> dict[str, object]:
    """The ``runtime_env`` for ``ray.init`` that installs ``faults`` in every worker of the job."""
    tests = str(Path(__file__).parent)
    path = os.pathsep.join([tests, *filter(None, [os.environ.get("PYTHONPATH")])])
    return {"worker_process_setup_hook": "ray_faults.install", "env_vars": {ENV: faults, "PYTHONPATH": path}}


def _first(marker: str) -> bool:
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _patch_embed(count: int, marker: str) -> None:
    from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    real = OnnxRuntimeBackend._submit
    calls = 0

    def submit(self, images):
        nonlocal calls
        calls += 1
        if calls == count and _first(marker):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, images)

    OnnxRuntimeBackend._submit = submit


def _patch_decode(kind: str, name: str, marker: str | None) -> None:
    if "frpt_runtime.pipeline" in sys.modules:  # the pipeline binds the decoder when it is imported
        raise RuntimeError("ray_faults.install ran after frpt_runtime.pipeline was imported")
    import frpt_runtime.images as images

    real = images.load_image

    def load_image(path, size, crop_pct, decoder="exact"):
        if Path(path).name == name:
            if kind == "fail-decode":
                raise RuntimeError(f"injected fault decoding {name}")
            if marker is not None and _first(marker):
                os.kill(os.getpid(), signal.SIGKILL)
        return real(path, size, crop_pct, decoder)

    images.load_image = load_image


def install() -> None:
    """Install the faults named in ``FRPT_RAY_FAULTS`` (Ray's setup hook; nothing when it is unset)."""
    for item in filter(None, os.environ.get(ENV, "").split(";")):
        kind, *args = item.split(":")
        if kind == "kill-embed":
            _patch_embed(int(args[0]), args[1])
        elif kind in ("kill-decode", "fail-decode"):
            _patch_decode(kind, args[0], args[1] if len(args) > 1 else None)
        else:
            raise ValueError(f"unknown fault {item!r}")
