"""Kill a command-line entry point with SIGKILL at a chosen durable write, and the kill -9 + ``--resume`` trial.

Product code carries no crash hooks: this test kit counts the process's ``os.fsync`` / ``os.replace`` calls and
kills the process right after the chosen one, which is exactly the "power cut after this write reached the disk"
point a resume must survive. Kill specs:

* ``fsync:NAME:N`` / ``replace:NAME:N`` -- after the N-th fsync of a file (or replace onto a file) whose name
  matches ``NAME`` (an ``fnmatch`` pattern: ``.manifest.json.*.tmp``);
* ``event:N`` -- after the N-th durable write of any file (fsync or replace; folders' fsyncs included);
* a trailing ``:stop`` sends SIGSTOP instead, leaving the process paused mid-run (it still holds what it holds).

One kill::

    python tests/crash_harness.py fsync:rows.f32:4 frpt_runtime.cli:embed_app IMAGES --onnx M -o OUT

kills ``frpt-embed`` after the fourth chunk's rows are fsync'd, before that chunk's journal line is written.

The trial (``python tests/crash_harness.py trial IMAGES MODEL WORKDIR [frpt-embed options]``, JSON on stdout)
runs ``frpt-embed`` once uninterrupted while tracing every durable write (the lock file, ``state.json``, every
chunk's ``rows.f32`` and ``journal.jsonl``, ``embeddings.npy``, ``run.json``, ``manifest.json``, the folders), then
for every one of them: a fresh run killed right after it, then ``--resume``. A point passes when the resumed
outputs are byte-identical to the uninterrupted run's (and ``OUT`` holds nothing else), or when ``--resume``
refuses in one line saying to drop it and a run without it is then byte-identical. The runs are forked from one
process that imported the runtime once, so the whole trial fits a CI budget.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

EVENTS = ("fsync", "replace")
FINAL_FILES = [".frpt-embed.lock", "embeddings.npy", "manifest.json", "run.json"]


def _target_name(arg: object) -> str:
    """The file name behind an fsync'd descriptor or a replace()'s destination."""
    if isinstance(arg, int):
        return Path(os.readlink(f"/proc/self/fd/{arg}")).name
    return Path(os.fspath(arg)).name


def install(spec: str, trace: list[tuple[str, str]] | None = None) -> None:
    """Patch ``os.fsync`` and ``os.replace``: record each call in ``trace`` and signal after the one ``spec`` names.

    ``spec`` is ``KIND:NAME:N``, ``event:N`` (either with an optional ``:stop``) or ``trace`` (record only).
    """
    parts = spec.split(":")
    sig = signal.SIGSTOP if parts[-1] == "stop" else signal.SIGKILL
    parts = parts[:-1] if parts[-1] == "stop" else parts
    kind, pattern, count = None, "*", 0
    if parts[0] == "event":
        kind, count = "event", int(parts[1])
    elif parts[0] in EVENTS:
        kind, pattern, count = parts[0], parts[1], int(parts[2])
    seen = 0

    def patched(event: str, real: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal seen
            result = real(*args, **kwargs)
            name = _target_name(args[0] if event == "fsync" else args[1])
            if trace is not None:
                trace.append((event, name))
            if kind in (event, "event") and fnmatch.fnmatchcase(name, pattern):
                seen += 1
                if seen == count:
                    os.kill(os.getpid(), sig)
            return result

        return counted

    for event in EVENTS:
        setattr(os, event, patched(event, getattr(os, event)))


def _app(entry: str) -> Any:
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)


def main() -> None:
    if sys.argv[1] == "trial":
        print(json.dumps(trial(*sys.argv[2:5], extra=sys.argv[5:]), indent=2))
        return
    spec, entry, *argv = sys.argv[1:]
    install(spec)
    app = _app(entry)
    sys.argv = [entry, *argv]
    app()


# ---- the trial: forked runs from one process ------------------------------------------------------------------


def _forked(app: Any, argv: list[str], spec: str, logs: Path) -> tuple[int, str, list[tuple[str, str]]]:
    """Run ``app(argv)`` in a forked child under ``spec``; return ``(returncode, stderr, trace)`` (-9: killed)."""
    trace_file = logs.with_suffix(".trace.json")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the parent's code
        code, trace = 99, []
        try:
            for fd, suffix in ((1, ".out"), (2, ".err")):
                target = os.open(logs.with_suffix(suffix), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(target, fd)
            install(spec, trace)
            app(argv, prog_name="frpt-embed")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - reported through the exit code and stderr
            traceback.print_exc()
        finally:
            trace_file.write_text(json.dumps(trace))
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    trace = json.loads(trace_file.read_text()) if trace_file.is_file() else []
    stderr = logs.with_suffix(".err").read_text(errors="replace")
    return code, stderr, [tuple(item) for item in trace]


def _outputs(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ("embeddings.npy", "manifest.json")}


def _judge(out: Path, reference: dict[str, bytes]) -> str | None:
    """``None`` when ``out`` holds exactly a finished run byte-identical to ``reference``, else what is wrong."""
    names = sorted(os.listdir(out))
    if names != FINAL_FILES:
        return f"OUT holds {names}"
    if _outputs(out) != reference:
        return "outputs differ from the uninterrupted run"
    from frpt_runtime.errors import FrptError
    from frpt_runtime.manifest import read_embeddings

    try:
        read_embeddings(out)  # the one reader accepts the pair
    except FrptError as exc:
        return f"read_embeddings refuses it: {exc}"
    return None


def _one_point(app: Any, base: list[str], out: Path, event: tuple[int, list[str]], reference: dict[str, bytes]) -> dict:
    """Kill a fresh run in ``out`` right after durable write number ``event[0]``, then resume it and judge."""
    index, after = event
    args = [*base, "--out", str(out)]
    killed, _, _ = _forked(app, args, f"event:{index}", out.with_name(f"{out.name}.kill"))
    point = {"point": index, "after": after, "killed": killed == -signal.SIGKILL}
    code, stderr, _ = _forked(app, [*args, "--resume"], "trace", out.with_name(f"{out.name}.resume"))
    if code == 0:
        point["outcome"], point["problem"] = "identical", _judge(out, reference)
    elif code == 2 and stderr.count("\n") == 1 and "drop --resume" in stderr:
        restart, _, _ = _forked(app, args, "trace", out.with_name(f"{out.name}.restart"))
        point["outcome"], point["message"] = "restarted", stderr.strip()
        point["problem"] = _judge(out, reference) if restart == 0 else f"restart exited {restart}"
    else:
        point["outcome"], point["problem"] = "failed", f"--resume exited {code}: {stderr.strip()[-400:]}"
    return point


def trial(images: str, model: str, workdir: str, extra: list[str]) -> dict[str, Any]:
    """Kill an ``frpt-embed`` run after each of its durable writes in turn and resume it (see the module docstring).

    Returns:
        ``{"events": [...], "points": [...], "identical": n, "restarted": n, "failed": [...]}``.
    """
    import onnxruntime  # noqa: F401 - imported once here, not in every forked run
    from PIL import Image

    Image.init()
    app = _app("frpt_runtime.cli:embed_app")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    base = [images, "--onnx", model, *extra]
    code, stderr, events = _forked(app, [*base, "--out", str(work / "ref")], "trace", work / "ref")
    if code != 0:
        raise SystemExit(f"the uninterrupted run failed ({code}): {stderr}")
    reference = _outputs(work / "ref")
    points = [_one_point(app, base, work / f"k{i:03d}", (i, e), reference) for i, e in enumerate(events, start=1)]
    return {
        "events": events,
        "points": points,
        "identical": sum(p["outcome"] == "identical" and p["problem"] is None for p in points),
        "restarted": sum(p["outcome"] == "restarted" and p["problem"] is None for p in points),
        "failed": [p for p in points if p["problem"] is not None or not p["killed"]],
    }


if __name__ == "__main__":
    main()
