"""What every FRPT command line shares (torch-free, so the runtime's CLIs use it too).

Exit codes, the ``--json`` / ``--debug`` options, app construction, and the mapping of a
:class:`~frpt.errors.FrptError` to one line on stderr (traceback only with ``--debug``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from frpt.errors import FrptError

__all__ = ["EXIT_INTERRUPTED", "EXIT_PARITY_FAILED", "EXIT_USER_ERROR", "JsonOpt", "DebugOpt", "make_app", "run_command"]

EXIT_PARITY_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell convention for SIGINT

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]


def make_app(name: str, help: str, epilog: str | None = None) -> typer.Typer:
    """A typer app that shows its help when called without arguments.

    A one-command app shows its command's ``epilog``; ``epilog`` here is for apps with subcommands.
    """
    return typer.Typer(name=name, no_args_is_help=True, add_completion=False, help=help, epilog=epilog)


def run_command(debug: bool, body: Callable[[], int | None]) -> None:
    """Run ``body``: FrptError or OSError -> one stderr line + exit 2; a non-zero return value is the exit code."""
    try:
        code = body()
    except FrptError as exc:
        if debug:
            raise
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None
    except OSError as exc:  # unwritable / full disk / missing path met mid-run: still one line, not a traceback
        if debug:
            raise
        typer.echo(f"error: {type(exc).__name__}: {' '.join(str(exc).split())}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None
    if code:
        raise typer.Exit(code)
