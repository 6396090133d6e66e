"""Image decoding to model-ready uint8 pixels (torch-free; discovery is :mod:`frpt_runtime.image_files`).

The one decoder shared by training (``frpt.data``) and the runtime, so PyTorch and every backend see
identical bytes. Geometry follows torchvision's ``Resize(round(size / crop_pct)) + CenterCrop(size)``
with PIL bicubic resampling.

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
bombs (more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels), which are never decoded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from frpt_runtime.errors import FrptError

__all__ = ["ImageDecodeError", "load_image", "resized_shape"]

_WHITE = (255, 255, 255)


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
            gray = (np.clip(values.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: str | os.PathLike[str], size: int, crop_pct: float) -> np.ndarray:
    """Decode one file into model input pixels.

    Args:
        path: image file.
        size: output side ``S`` (the model's ``input_size``).
        crop_pct: centre-crop fraction in ``(0, 1]``: the shorter side is resized (PIL bicubic) to
            ``round(size / crop_pct)``, then the centre ``S x S`` is cut out.

    Returns:
        uint8 ``[S, S, 3]`` RGB, C-contiguous.

    Raises:
        ImageDecodeError: zero-byte, missing, unreadable, non-image, corrupt or truncated file, or a
            decompression bomb; the message is one line naming the reason.
        ValueError: ``size`` or ``crop_pct`` out of range (a caller bug, not a bad file).
    """
    if size < 1 or not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"need size >= 1 and 0 < crop_pct <= 1, got size={size} crop_pct={crop_pct}")
    file = Path(path)
    try:
        if file.stat().st_size == 0:
            raise ImageDecodeError("zero-byte file")
        with Image.open(file) as image:
            _check_pixel_budget(image)
            image.load()
            rgb = _to_rgb(ImageOps.exif_transpose(image))
            short = round(size / crop_pct)
            resized = rgb.resize(resized_shape(*rgb.size, short), Image.Resampling.BICUBIC)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"decompression bomb: {_one_line(exc)}") from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image PIL can identify") from None
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: PIL's plugins raise many types; skip, never abort
        raise ImageDecodeError(f"cannot decode: {type(exc).__name__}: {_one_line(exc)}") from None
    width, height = resized.size
    top = round((height - size) / 2.0)
    left = round((width - size) / 2.0)
    pixels = np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return np.ascontiguousarray(pixels)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
