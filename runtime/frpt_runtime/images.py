"""Image decoding to model-ready uint8 pixels (torch-free; discovery is :mod:`frpt_runtime.image_files`).

The one decoder shared by training (``frpt.data``) and the runtime, so PyTorch and every backend see
identical bytes. Geometry follows torchvision's ``Resize(round(size / crop_pct)) + CenterCrop(size)``
with PIL bicubic resampling (shorter side to ``round(size / crop_pct)``, longer side truncated).

Two modes, named by the model config's ``decoder`` (recorded in checkpoints, ONNX metadata, bundles, sidecars
and ``frpt-embed``'s manifest, so training and every runtime decode alike):

- ``exact``: torchvision's pixels, bit for bit: full decode, the whole image resized, then the centre crop. Only
  where the resized image would hold more than :data:`FULL_RESIZE_MAX_AREA` times the crop's pixels (an aspect
  beyond ~3:1 at crop_pct 0.875) is the crop box resized alone, so memory stays bounded by the output (a 1 x 40000
  PNG would otherwise resize to ~146 x 5.8 M pixels, 3.6 GiB); there PIL's float32 box and its pass order by
  output size make values differ from the full resize by rounding (mostly +-1).
- ``fast`` (the default of new configs): JPEGs are decoded at a DCT-domain draft of 1/2, 1/4 or 1/8 scale, the
  largest that keeps the shorter side >= 2x the resize target (a 12 MP photo for 224 px: 1/4); the pixel budget
  counts the drafted pixels; then the crop box alone is resized, from the draft with the source's geometry (EXIF
  orientation and partial draft pixels accounted for). Pixels change (12 MP JPEGs: mean |Δ| ~0.2 levels; no
  draft applies to ~500 x 375 JPEGs at >= 128 px, where only the box rounding differs): ``benchmarks/bench_decode.py``.

Colour handling, whatever the file holds, ends in 8-bit RGB:

- EXIF orientation is applied first (``ImageOps.exif_transpose``).
- Transparency (RGBA, LA, PA, palette or RGB with a ``transparency`` key) is **composited on white**:
  a transparent background means "no content", and white is what viewers show; dropping alpha instead
  would expose whatever colour the encoder left under transparent pixels.
- 16-bit samples keep their high byte (``v >> 8``): PIL decodes 48-bit RGB that way, and 16-bit (or
  32-bit integer, clipped to ``[0, 65535]``) grayscale gets the same rule here — PIL's own
  ``convert("L")`` would clip at 255 instead. Float images are clipped to ``[0, 255]``.
- Grayscale, palette, CMYK, bilevel and other modes go through PIL's ``convert("RGB")``.
- Animated formats use their first frame.

Anything unreadable becomes :class:`ImageDecodeError` with a one-line reason, including decompression
bombs (more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels to decode), which are never decoded.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import DECODERS

__all__ = ["DECODE_MEMORY_BYTES", "FULL_RESIZE_MAX_AREA", "ImageDecodeError", "load_image", "resized_shape"]

_WHITE = (255, 255, 255)
# The exact decoder resizes the whole image while that holds at most this many times the crop's pixels (up to a
# ~3:1 aspect at crop_pct 0.875); beyond, only the crop box (a 1 x 40000 PNG would resize to ~146 x 5.8 M pixels).
FULL_RESIZE_MAX_AREA = 4
# EXIF orientation (ImageOps.exif_transpose's transpositions): 5-8 swap the axes; which displayed axes run backwards.
_ORIENTATION_TAG = 0x0112
_SWAPS_AXES = frozenset({5, 6, 7, 8})
_FLIPS_AXES = {2: (True, False), 3: (True, True), 4: (False, True), 6: (True, False), 7: (True, True), 8: (False, True)}
# Rows per step of the alpha composite (bounds its temporaries: ~12 bytes x width x rows).
_STRIP_ROWS = 256
# Decoding working memory all threads of a process may hold at once (see _DecodeMemory): 4 workers decoding 12 MP
# photos exactly fit (~100 MB each); an 89 M-pixel PNG (PIL's limit) waits and runs alone.
DECODE_MEMORY_BYTES = 512 * 2**20
# PIL allocates images in blocks (16 MiB by default). glibc serves blocks under its mmap threshold (which rises to
# 32 MiB) from per-thread arenas and keeps them once freed, so decode threads pile up freed images (a folder of
# 80 M-pixel PNGs: 1.46 GiB peak RSS); blocks above it are mmap'd and go back to the system when freed (0.78 GiB).
# PILLOW_BLOCK_SIZE, PIL's own setting, still wins.
_PIL_BLOCK_BYTES = 64 * 2**20
if "PILLOW_BLOCK_SIZE" not in os.environ:
    Image.core.set_block_size(_PIL_BLOCK_BYTES)


class ImageDecodeError(FrptError):
    """A file that cannot become model input; the message is a one-line reason (the run skips the file)."""


def resized_shape(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Size after scaling the shorter side to ``short_side`` (torchvision's rule: long side truncated).

    Returns:
        ``(new_width, new_height)``.
    """
    if width <= height:
        return short_side, int(short_side * height / width)
    return int(short_side * width / height), short_side


def _check_pixel_budget(image: Image.Image) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"empty image ({width}x{height} pixels)")
    if limit is not None and width * height > limit:
        raise ImageDecodeError(
            f"decompression bomb: {width}x{height} = {width * height} pixels exceeds the limit of {limit}"
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB (see the module docstring for the rules)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image)
        if mode == "F":
            gray = np.rint(np.clip(np.nan_to_num(values), 0, 255)).astype(np.uint8)
        else:
            gray = (np.clip(values, 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        return _composite_on_white(image)
    return image.convert("RGB")


def _composite_on_white(image: Image.Image) -> Image.Image:
    """RGB of ``image`` alpha-composited on opaque white, :data:`_STRIP_ROWS` rows at a time (a per-pixel operation:
    the same values as the whole image at once, with one full-size RGBA copy fewer and no full-size canvas)."""
    rgb = Image.new("RGB", image.size)
    for top in range(0, image.height, _STRIP_ROWS):
        box = (0, top, image.width, min(top + _STRIP_ROWS, image.height))
        strip = image.crop(box).convert("RGBA")
        canvas = Image.new("RGBA", strip.size, (*_WHITE, 255))
        rgb.paste(Image.alpha_composite(canvas, strip).convert("RGB"), box[:2])
    return rgb


class _DecodeMemory:
    """Bytes of decoding working memory this process's decoders hold at once (threads wait their turn); a request
    above the whole budget runs alone, so a folder of large images costs one large image, not ``workers`` of them."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        with self._changed:
            while self.used and self.used + nbytes > self.limit:
                self._changed.wait()
            self.used += nbytes
        try:
            yield
        finally:
            with self._changed:
                self.used -= nbytes
                self._changed.notify_all()


_DECODE_MEMORY = _DecodeMemory(DECODE_MEMORY_BYTES)


def _working_set(image: Image.Image) -> int:
    """Bytes a decode of ``image`` (its size as it will be decoded) holds at most: the decoded pixels (PIL keeps
    1, 2 or 4 bytes per pixel) and their 4-byte RGB conversion or transposition."""
    stored = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    return image.width * image.height * (stored + 4)


def _draft(image: Image.Image, target: int) -> int:
    """Ask a JPEG for a DCT-domain draft at 1/``s`` scale, ``s`` in {2, 4, 8} the largest that keeps the shorter side
    >= ``2 * target``; its pixel ``i`` then covers source pixels ``[i*s, (i+1)*s)``. Returns ``s`` (1: no draft)."""
    width = image.size[0]
    drafted = image.draft(image.mode, (2 * target, 2 * target))
    return 1 if drafted is None else round(width / drafted[1][2])


@dataclass(frozen=True)
class _Frame:
    """Where a decoded image lies on its source, both as displayed: pixel ``x = (source x - offset) / scale``.

    Attributes:
        width, height: the source image's size (EXIF orientation applied).
        scale: the JPEG draft's reduction (1: the image is the source).
        offset: source coordinates of the decoded image's origin; negative where a transposition put the draft's
            last, partly filled pixel first.
    """

    width: int
    height: int
    scale: int = 1
    offset: tuple[int, int] = (0, 0)


def _frame(stored: tuple[int, int], decoded: tuple[int, int], scale: int, orientation: int) -> _Frame:
    """The :class:`_Frame` of a ``decoded``-size image (``stored`` source size) after EXIF ``orientation``."""
    (width, height), (dw, dh) = stored, decoded
    past = (width - scale * dw, height - scale * dh)  # <= 0: the draft's last pixel reaches past the source
    if orientation in _SWAPS_AXES:
        width, height, past = height, width, (past[1], past[0])
    flip_x, flip_y = _FLIPS_AXES.get(orientation, (False, False))
    return _Frame(width, height, scale, (past[0] if flip_x else 0, past[1] if flip_y else 0))


def _resize_crop(image: Image.Image, size: int, crop_pct: float, frame: _Frame, box_only: bool) -> Image.Image:
    """The ``size x size`` centre of torchvision's ``Resize(round(size / crop_pct))`` of the source ``image`` shows.

    The whole image is resized, then cropped (bit-identical to torchvision), unless ``box_only``, a draft, or a
    resized image of more than :data:`FULL_RESIZE_MAX_AREA` times the crop's pixels: then only the crop box is
    resized (PIL ``resize(box=...)``: the same filter, positions and support, so memory and work scale with the
    output; PIL takes the box in float32 and picks its pass order by the output size: values may differ by rounding).
    """
    new_w, new_h = resized_shape(frame.width, frame.height, round(size / crop_pct))
    left, top = round((new_w - size) / 2.0), round((new_h - size) / 2.0)
    crop = (left, top, left + size, top + size)
    exact = frame.scale == 1 and not box_only
    if exact and (new_w, new_h) == image.size:  # torchvision leaves an image of the right size as it is
        return image.crop(crop)
    if exact and new_w * new_h <= FULL_RESIZE_MAX_AREA * size * size:
        return image.resize((new_w, new_h), Image.Resampling.BICUBIC).crop(crop)
    sx, sy = frame.width / new_w / frame.scale, frame.height / new_h / frame.scale
    ox, oy = frame.offset[0] / frame.scale, frame.offset[1] / frame.scale
    box = (
        left * sx - ox,
        top * sy - oy,
        min((left + size) * sx - ox, image.width),
        min((top + size) * sy - oy, image.height),
    )
    return image.resize((size, size), Image.Resampling.BICUBIC, box=box)


def load_image(path: str | os.PathLike[str], size: int, crop_pct: float, decoder: str = "exact") -> np.ndarray:
    """Decode one file into model input pixels.

    Args:
        path: image file.
        size: output side ``S`` (the model's ``input_size``).
        crop_pct: centre-crop fraction in ``(0, 1]``: the shorter side is resized (PIL bicubic) to
            ``round(size / crop_pct)``, then the centre ``S x S`` is cut out.
        decoder: the model config's ``decoder``: ``exact`` (torchvision's pixels) or ``fast`` (JPEG draft, crop box
            resized alone; see the module docstring).

    Returns:
        uint8 ``[S, S, 3]`` RGB, C-contiguous.

    Raises:
        ImageDecodeError: zero-byte, missing, unreadable, non-image, corrupt or truncated file, or a
            decompression bomb; the message is one line naming the reason.
        ValueError: ``size``, ``crop_pct`` or ``decoder`` out of range (a caller bug, not a bad file).
    """
    if size < 1 or not 0.0 < crop_pct <= 1.0 or decoder not in DECODERS:
        raise ValueError(f"need size >= 1, 0 < crop_pct <= 1, decoder in {DECODERS}: got {size}, {crop_pct}, {decoder}")
    file = Path(path)
    fast = decoder == "fast"
    try:
        if file.stat().st_size == 0:
            raise ImageDecodeError("zero-byte file")
        with Image.open(file) as image:
            stored = image.size
            scale = _draft(image, round(size / crop_pct)) if fast else 1
            _check_pixel_budget(image)  # what will be decoded: the draft's pixels
            with _DECODE_MEMORY.reserve(_working_set(image)):
                image.load()  # before any EXIF read: a PNG may keep its EXIF after the pixels
                frame = _frame(stored, image.size, scale, image.getexif().get(_ORIENTATION_TAG, 1))
                ImageOps.exif_transpose(image, in_place=True)
                pixels = _resize_crop(_to_rgb(image), size, crop_pct, frame, box_only=fast)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"decompression bomb: {_one_line(exc)}") from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image PIL can identify") from None
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: PIL's plugins raise many types; skip, never abort
        raise ImageDecodeError(f"cannot decode: {type(exc).__name__}: {_one_line(exc)}") from None
    return np.ascontiguousarray(np.asarray(pixels, dtype=np.uint8))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
