"""Run a command-line entry point in a fresh process and SIGKILL it at a chosen durable write (test kit).

Product code carries no crash hooks: this wrapper counts the process's ``os.fsync`` / ``os.replace`` calls on
files with a given name and kills the process right after the N-th one, which is exactly the "power cut after
this write reached the disk" point a resume must survive::

    python tests/crash_harness.py fsync:rows.f32:4 frpt_runtime.cli:embed_app IMAGES --onnx M -o OUT

kills ``frpt-embed`` after the fourth chunk's rows are fsync'd, before that chunk's journal line is written. The
name may be a shell pattern (``replace:shard-*.parquet:1``: after the first shard file of ``--ray`` is in place).
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import signal
import sys
from pathlib import Path


def _target_name(arg: object) -> str:
    """The file name behind an fsync'd descriptor or a replace()'s destination."""
    if isinstance(arg, int):
        return Path(os.readlink(f"/proc/self/fd/{arg}")).name
    return Path(os.fspath(arg)).name


def install(spec: str) -> None:
    """Patch ``os.fsync`` or ``os.replace``: SIGKILL right after the ``count``-th call on a file matching ``name``."""
    event, name, count = spec.split(":")
    real = getattr(os, event)
    seen = 0

    def counted(*args, **kwargs):
        nonlocal seen
        result = real(*args, **kwargs)
        target = args[0] if event == "fsync" else args[1]
        if fnmatch.fnmatchcase(_target_name(target), name):
            seen += 1
            if seen == int(count):
                os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(os, event, counted)


def main() -> None:
    spec, entry, *argv = sys.argv[1:]
    install(spec)
    module, _, attr = entry.partition(":")
    app = getattr(importlib.import_module(module), attr)
    sys.argv = [entry, *argv]
    app()


if __name__ == "__main__":
    main()
