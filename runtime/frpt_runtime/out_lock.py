"""One run per output folder: an advisory lock held for the whole run (torch-free, POSIX).

``OUT/.frpt-embed.lock`` is locked with ``fcntl.flock(LOCK_EX | LOCK_NB)`` before anything in ``OUT`` is read
or written, and stays locked until the run ends. The operating system drops the lock when the process dies,
however it dies (``kill -9`` included), so a crashed run never leaves a stale lock: the file itself stays (it
holds the last holder's pid, for the message a refused run prints) and is reused by the next run. Deleting it
would let two runs lock two different files of the same name.

The lock is advisory: it orders ``frpt-embed`` runs, not other programs writing into ``OUT``; on network file
systems it holds only where the server supports ``flock``.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from frpt_runtime.errors import FrptError

__all__ = ["LOCK_FILE", "OutputLock"]

LOCK_FILE = ".frpt-embed.lock"


class OutputLock:
    """``with OutputLock(out):`` -- hold ``out``'s lock for the block; ``out`` must exist.

    Raises (on entry):
        FrptError: another process holds the lock (the message names its pid).
    """

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise FrptError(
                f"{self.path.parent} is in use by another frpt-embed run (pid {holder}): wait for it to finish, "
                "or choose another --out"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


def _holder(fd: int) -> str:
    """The pid the lock holder wrote into the file ("unknown" if it has not written it yet)."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"
