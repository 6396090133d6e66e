"""frpt_runtime.image_files: what is embedded, and a reason for every candidate that is not (issue 9, items 5-6)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from frpt_runtime import image_files
from frpt_runtime.atomic import json_bytes
from frpt_runtime.errors import FrptError
from frpt_runtime.image_files import list_images, printable, scan_images


def _touch(root: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")


def test_list_images_recursive_sorted_by_extension(tmp_path: Path) -> None:
    _touch(tmp_path, "b/z.JPG", "b/a.png", "a.webp", "a/c/d.tiff", "notes.txt", "b/x.gif", "c.PPM", "e.jpeg")
    rels = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert rels == ["a.webp", "a/c/d.tiff", "b/a.png", "b/x.gif", "b/z.JPG", "c.PPM", "e.jpeg"]
    assert list_images(tmp_path / "a" / "c") == [tmp_path / "a" / "c" / "d.tiff"]
    scan = scan_images(tmp_path)
    assert scan.skipped == [] and [f.size for f in scan.files] == [1] * 7  # notes.txt is no candidate
    assert all(f.mtime_ns == (tmp_path / f.rel).stat().st_mtime_ns for f in scan.files)


def test_missing_root_and_root_that_is_a_file(tmp_path: Path) -> None:
    with pytest.raises(FrptError, match="not found"):
        scan_images(tmp_path / "missing")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(FrptError, match="afile is a file, not a folder"):
        scan_images(tmp_path / "afile")


def test_unreadable_folder_is_listed_not_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder the walk cannot list is reported (os.walk dropped it without a word); injected, since root reads
    everything."""
    _touch(tmp_path, "ok/a.png", "locked/b.png", "locked/deeper/c.png")
    real = os.scandir

    def scandir(path):
        if isinstance(path, str | os.PathLike) and Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(image_files.os, "scandir", scandir)
    scan = scan_images(tmp_path)
    assert [f.rel for f in scan.files] == ["ok/a.png"]
    assert scan.skipped == [("locked/", "unreadable folder (PermissionError: Permission denied)")]


def test_really_unreadable_folder(tmp_path: Path) -> None:
    _touch(tmp_path, "ok/a.png", "locked/b.png")
    (tmp_path / "locked").chmod(0)
    try:
        if os.access(tmp_path / "locked", os.R_OK):
            pytest.skip("running as root: a mode-000 folder is still readable (the injected test covers it)")
        assert scan_images(tmp_path).skipped == [("locked/", "unreadable folder (PermissionError: Permission denied)")]
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_symlink_policy_and_follow_switch(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    _touch(root, "real/a.png", "real/b.png")
    _touch(outside, "secret.png", "more/c.png")
    (root / "inner_link.png").symlink_to(root / "real" / "a.png")  # inside the root: embedded under its name
    (root / "leaving.png").symlink_to(outside / "secret.png")
    (root / "linked_dir").symlink_to(outside / "more")
    (root / "dangling.png").symlink_to(tmp_path / "nothing.png")
    (root / "real" / "loop").symlink_to(root / "real")
    scan = scan_images(root)
    assert [f.rel for f in scan.files] == ["inner_link.png", "real/a.png", "real/b.png"]
    assert scan.skipped == [
        ("dangling.png", "broken symlink"),
        ("leaving.png", "symlink leaving the root (pass --follow-symlinks to follow it)"),
        ("linked_dir/", "symlinked folder not followed (pass --follow-symlinks to follow it)"),
        ("real/loop/", "symlinked folder not followed (pass --follow-symlinks to follow it)"),
    ]
    followed = scan_images(root, follow_symlinks=True)
    assert [f.rel for f in followed.files] == [
        "inner_link.png",
        "leaving.png",
        "linked_dir/c.png",
        "real/a.png",
        "real/b.png",
    ]
    assert followed.skipped == [
        ("dangling.png", "broken symlink"),
        ("real/loop/", "symlink loop (the folder is already on this path)"),
    ]


def test_fifo_and_devices_are_not_regular_files(tmp_path: Path) -> None:
    """A FIFO would block the decoder and /dev/zero read as a zero-byte file: both are refused by kind."""
    _touch(tmp_path, "a.png")
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    assert scan_images(tmp_path).skipped == [
        ("pipe.jpg", "not a regular file (a FIFO)"),
        ("zero.png", "symlink leaving the root (pass --follow-symlinks to follow it)"),
    ]
    followed = scan_images(tmp_path, follow_symlinks=True)
    assert [f.rel for f in followed.files] == ["a.png"]
    assert followed.skipped == [
        ("pipe.jpg", "not a regular file (a FIFO)"),
        ("zero.png", "not a regular file (a character device)"),
    ]


def test_non_utf8_names_are_listed_and_round_trip_through_json(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9.png"  # Latin-1 bytes: not UTF-8
    with open(raw, "wb") as handle:
        handle.write(b"x")
    (scan,) = scan_images(tmp_path).files
    assert scan.rel == "caf\udce9.png" and os.fsencode(scan.rel) == b"caf\xe9.png"
    text = json_bytes({"images": [scan.rel]})
    assert text.decode("ascii") == '{\n  "images": [\n    "caf\\udce9.png"\n  ]\n}\n'  # valid JSON, ASCII escape
    assert os.fsencode(json.loads(text)["images"][0]) == b"caf\xe9.png"  # reversible
    assert json.loads(json_bytes({"name": "é"}))["name"] == "é"  # valid UTF-8 stays as it is


def test_printable_keeps_a_name_on_one_line() -> None:
    assert printable("a\nfake line.png") == "a\\x0afake line.png"
    assert printable("caf\udce9\t\\x.png") == "caf\\udce9\\x09\\\\x.png"
    assert printable("ok é 漢字.png") == "ok é 漢字.png"
    assert "\n" not in printable("x\u2028y\r\n")
