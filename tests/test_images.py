"""frpt_runtime.images: decoding every kind of file to uint8 RGB, and skipping the bad ones with a reason."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from frpt_runtime.errors import FrptError
from frpt_runtime.images import ImageDecodeError, load_image, resized_shape

SIZE, CROP = 32, 0.875


def _gradient(width: int = 48, height: int = 40) -> np.ndarray:
    """uint8 [H, W, 3] with distinct rows/columns so a rotation or crop offset shows."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1).astype(np.uint8)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose header claims ``width x height`` pixels (never decoded)."""

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b""))
        + _png_chunk(b"IEND", b"")
    )


def test_rgb_matches_torchvision_resize_and_center_crop(tmp_path: Path) -> None:
    tv = pytest.importorskip("torchvision.transforms")
    path = tmp_path / "a.png"
    Image.fromarray(_gradient(57, 41)).save(path)
    ref = tv.Compose([tv.Resize(round(SIZE / CROP), interpolation=tv.InterpolationMode.BICUBIC), tv.CenterCrop(SIZE)])
    expected = np.asarray(ref(Image.open(path).convert("RGB")))
    got = load_image(path, SIZE, CROP)
    assert got.dtype == np.uint8 and got.shape == (SIZE, SIZE, 3) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = _gradient(60, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display = rotate 90 degrees clockwise
    Image.fromarray(pixels).save(tmp_path / "rot.png", exif=exif)
    Image.fromarray(np.rot90(pixels, k=-1).copy()).save(tmp_path / "upright.png")
    np.testing.assert_array_equal(
        load_image(tmp_path / "rot.png", SIZE, 1.0), load_image(tmp_path / "upright.png", SIZE, 1.0)
    )


def test_grayscale_palette_cmyk_become_rgb(tmp_path: Path) -> None:
    gray = _gradient()[..., 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png", SIZE, 1.0)
    assert out.shape == (SIZE, SIZE, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])

    rgb = Image.fromarray(_gradient())
    rgb.quantize(16).save(tmp_path / "p.gif")
    rgb.convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    rgb.save(tmp_path / "ref.png")
    ref = load_image(tmp_path / "ref.png", SIZE, 1.0).astype(int)
    for name in ("p.gif", "c.jpg"):
        out = load_image(tmp_path / name, SIZE, 1.0)
        assert out.shape == (SIZE, SIZE, 3) and out.dtype == np.uint8
        assert np.abs(out.astype(int) - ref).mean() < 20, name


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 200  # red under the transparent half must not leak through
    rgba[:, :20, 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png", 40, 1.0)
    np.testing.assert_array_equal(out[:, :18], np.broadcast_to([200, 0, 0], (40, 18, 3)))
    np.testing.assert_array_equal(out[:, 22:], np.full((40, 18, 3), 255))

    palette = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    palette.putpalette([10, 20, 30, 40, 50, 60])
    palette.info["transparency"] = 1
    palette.save(tmp_path / "t.png", transparency=1)
    out = load_image(tmp_path / "t.png", 2, 1.0)
    assert out[0, 0].tolist() == [10, 20, 30] and out[0, 1].tolist() == [255, 255, 255]


def test_sixteen_bit_keeps_high_byte_not_clipped(tmp_path: Path) -> None:
    values = np.full((24, 24), 40000, np.uint16)
    Image.fromarray(values).save(tmp_path / "16.png")
    assert Image.open(tmp_path / "16.png").mode.startswith("I")
    out = load_image(tmp_path / "16.png", 24, 1.0)
    np.testing.assert_array_equal(out, np.full((24, 24, 3), 40000 >> 8))

    rgb = np.full((6, 6, 3), [40000, 1000, 65535], ">u2")  # a 48-bit PNG, written by hand (PIL cannot)
    raw = b"".join(b"\x00" + row.tobytes() for row in rgb)
    header = struct.pack(">IIBBBBB", 6, 6, 16, 2, 0, 0, 0)
    (tmp_path / "48.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )
    np.testing.assert_array_equal(
        load_image(tmp_path / "48.png", 6, 1.0), np.full((6, 6, 3), [40000 >> 8, 1000 >> 8, 255])
    )


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.jpg", b"", "zero-byte"),
        ("text.png", b"hello, not an image\n", "not an image"),
        ("noise.jpg", bytes(range(256)) * 4, "not an image"),
    ],
)
def test_bad_bytes_raise_one_line_reason(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageDecodeError, match=reason) as info:
        load_image(tmp_path / name, SIZE, CROP)
    assert "\n" not in str(info.value) and isinstance(info.value, FrptError)


def test_truncated_and_corrupt_jpeg(tmp_path: Path) -> None:
    Image.fromarray(_gradient(200, 160)).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "corrupt.jpg").write_bytes(data[:200] + b"\x00" * 50 + b"\xff\xd9")
    for name in ("trunc.jpg", "corrupt.jpg"):
        with pytest.raises(ImageDecodeError, match="cannot decode") as info:
            load_image(tmp_path / name, SIZE, CROP)
        assert "\n" not in str(info.value)


def test_decompression_bomb_is_refused_without_decoding(tmp_path: Path) -> None:
    _bomb_png(tmp_path / "huge.png", 60000, 60000)  # 3.6 G pixels: PIL's hard limit
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        load_image(tmp_path / "huge.png", SIZE, CROP)
    _bomb_png(tmp_path / "big.png", 10000, 10000)  # 1e8 pixels: between PIL's warning and error limits
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(ImageDecodeError, match="exceeds the limit"):
        load_image(tmp_path / "big.png", SIZE, CROP)


def test_missing_file_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="FileNotFoundError"):
        load_image(tmp_path / "nope.jpg", SIZE, CROP)
    with pytest.raises(ValueError):
        load_image(tmp_path / "nope.jpg", SIZE, 1.5)


def test_resized_shape_follows_torchvision() -> None:
    assert resized_shape(57, 41, 37) == (51, 37)
    assert resized_shape(41, 57, 37) == (37, 51)
    assert resized_shape(40, 40, 37) == (37, 37)
