"""Output-path checks every command runs before any work, so a long run is never lost at the final write.

Each raises :class:`~frpt_runtime.errors.FrptError` with one line naming
the option and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from frpt_runtime.errors import FrptError

__all__ = ["check_output_dir", "check_output_file"]


def _check_creatable(folder: Path, path: Path, option: str) -> None:
    """``folder`` (absent or a folder) can be created and written: its nearest existing ancestor is a writable
    folder. Messages name the user's ``path``."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        where = "is a file" if probe == path else f"is under {probe}, which is a file"
        raise FrptError(f"{option} {path} {where}, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise FrptError(f"{option} {path}: {probe} is not writable (read-only or no permission)")


def check_output_file(path: Path, option: str) -> None:
    """Refuse an output file that is a folder, sits under a file, or cannot be written."""
    if path.is_dir():
        raise FrptError(f"{option} {path} is a folder: give the file to write")
    _check_creatable(path.parent, path, option)


def check_output_dir(path: Path, option: str) -> None:
    """Refuse an output folder that is a file, sits under a file, or cannot be written."""
    _check_creatable(path, path, option)
