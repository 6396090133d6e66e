"""Image discovery: which files under a folder are embedded, and why each other candidate is not (torch-free).

:func:`scan_images` walks the folder itself (``os.scandir``; ``os.walk`` drops unreadable folders without a word)
and returns the image files with their size and modification time, plus a ``(path, reason)`` for every candidate
it will not hand to the decoder. A *candidate* is a folder, a symlink, or a file whose suffix (case-insensitive)
is in :data:`IMAGE_EXTENSIONS`; other files (``notes.txt``) are ignored.

Symlink policy (the default keeps a run inside the folder it was given):

* a symlink whose target, after resolving every link, is a regular file **inside** the root is embedded under
  its own name;
* a symlinked **folder** is not followed: ``symlinked folder not followed``;
* a symlink whose target lies **outside** the root: ``symlink leaving the root``; a dangling one: ``broken
  symlink``;
* with ``follow_symlinks=True`` (``frpt-embed --follow-symlinks``) symlinked folders and targets outside the root
  are followed too; a folder that is already on the path being walked is reported as ``symlink loop``.

A folder that cannot be listed is reported as ``unreadable folder`` (its path ends in ``/``), a candidate that
is not a regular file (FIFO, device, socket) as ``not a regular file``. Names are what the OS returns: a name
that is not valid UTF-8 is a ``str`` in Python's surrogateescape form (PEP 383; ``os.fsencode`` gives the bytes
back), which :func:`frpt_runtime.atomic.json_bytes` writes as ``\\udcXX`` escapes; :func:`printable` shows any
name on one line.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from frpt_runtime.errors import FrptError

__all__ = ["IMAGE_EXTENSIONS", "ImageFile", "ImageScan", "check_image_root", "list_images", "printable", "scan_images"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm"})
FOLLOW_HINT = "pass --follow-symlinks to follow it"


@dataclass(frozen=True)
class ImageFile:
    """One image file found by :func:`scan_images`.

    Attributes:
        path: ``root / rel``.
        rel: path relative to the root, POSIX separators (the manifest's name for it).
        size, mtime_ns: ``stat`` of the file (its target, for a symlink) when it was listed.
    """

    path: Path
    rel: str
    size: int
    mtime_ns: int


@dataclass
class ImageScan:
    """What :func:`scan_images` found: image files sorted by ``rel``, and the candidates it skipped."""

    root: Path
    files: list[ImageFile] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [item.path for item in self.files]


def check_image_root(root: str | os.PathLike[str]) -> Path:
    """The image folder as a Path, refused in one line when it is missing or a file."""
    base = Path(root)
    if not base.is_dir():
        what = "is a file, not a folder" if base.exists() else "not found"
        raise FrptError(f"image folder {printable(str(base))} {what}: pass an existing folder")
    return base


def printable(text: str) -> str:
    """``text`` on one line: backslashes, control, format and surrogate characters written as escapes."""
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif unicodedata.category(char)[0] == "C" or char in "\u2028\u2029":
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out)


@dataclass
class _Walk:
    root: Path
    real_root: str
    follow: bool
    scan: ImageScan

    def inside(self, real: str) -> bool:
        return real == self.real_root or real.startswith(self.real_root.rstrip(os.sep) + os.sep)

    def skip(self, rel: str, reason: str) -> None:
        self.scan.skipped.append((rel, reason))


def scan_images(root: str | os.PathLike[str], *, follow_symlinks: bool = False) -> ImageScan:
    """Walk ``root`` recursively (see the module docstring for what is embedded and what is reported).

    Returns:
        The :class:`ImageScan`; ``files`` sorted by ``rel``, ``skipped`` by path.

    Raises:
        FrptError: ``root`` is missing, is a file, or cannot be listed.
    """
    base = check_image_root(root)
    walk = _Walk(base, os.path.realpath(base), follow_symlinks, ImageScan(base))
    try:
        entries = _entries(base)
    except OSError as exc:
        raise FrptError(
            f"image folder {printable(str(base))} cannot be read ({_why(exc)}): check its permissions"
        ) from None
    _visit_entries(walk, entries, "", {_identity(os.stat(base))})
    walk.scan.files.sort(key=lambda item: item.rel)
    walk.scan.skipped.sort()
    return walk.scan


def list_images(root: str | os.PathLike[str]) -> list[Path]:
    """The image files :func:`scan_images` would embed, in order (skipped candidates are dropped)."""
    return scan_images(root).paths


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as listing:
        return sorted(listing, key=lambda entry: entry.name)


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _why(exc: OSError) -> str:
    return f"{type(exc).__name__}: {exc.strerror or exc}"


def _visit_entries(walk: _Walk, entries: list[os.DirEntry[str]], prefix: str, ancestors: set[tuple[int, int]]) -> None:
    for entry in entries:
        rel = prefix + entry.name
        is_link = entry.is_symlink()
        is_image = Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS
        try:
            info = os.stat(entry.path)
        except OSError as exc:
            if is_link or is_image:
                walk.skip(rel, "broken symlink" if isinstance(exc, FileNotFoundError) else f"cannot stat ({_why(exc)})")
            continue
        if stat.S_ISDIR(info.st_mode):
            _visit_folder(walk, entry, rel, is_link, info, ancestors)
        elif is_image:
            _visit_file(walk, entry, rel, is_link, info)


def _visit_folder(
    walk: _Walk, entry: os.DirEntry[str], rel: str, is_link: bool, info: os.stat_result, ancestors: set[tuple[int, int]]
) -> None:
    if is_link and not walk.follow:
        walk.skip(rel + "/", f"symlinked folder not followed ({FOLLOW_HINT})")
        return
    if _identity(info) in ancestors:
        walk.skip(rel + "/", "symlink loop (the folder is already on this path)")
        return
    try:
        entries = _entries(Path(entry.path))
    except OSError as exc:
        walk.skip(rel + "/", f"unreadable folder ({_why(exc)})")
        return
    _visit_entries(walk, entries, rel + "/", ancestors | {_identity(info)})


def _visit_file(walk: _Walk, entry: os.DirEntry[str], rel: str, is_link: bool, info: os.stat_result) -> None:
    if is_link and not walk.follow and not walk.inside(os.path.realpath(entry.path)):
        walk.skip(rel, f"symlink leaving the root ({FOLLOW_HINT})")
        return
    if not stat.S_ISREG(info.st_mode):
        walk.skip(rel, f"not a regular file ({_kind(info.st_mode)})")
        return
    walk.scan.files.append(ImageFile(walk.root / rel, rel, info.st_size, info.st_mtime_ns))


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "an unknown file type"
