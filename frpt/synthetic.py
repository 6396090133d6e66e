"""Synthetic fine-grained dataset: "birds" whose sub-classes differ only in small local details.

Every image shows one bird (body, head, eye, beak, tail) on a cluttered background. The class is the
triple (crest shape on the head, mark on the wing, pattern on the tail): all small parts of the bird.
Everything else is nuisance, drawn independently of the class: body colour, position, scale, rotation,
left/right flip, background gradient and clutter shapes. Retrieval must therefore look at the details, as in CUB-200.

There are 6 x 4 x 3 = 72 classes, split for retrieval the standard way (disjoint train / test classes): a
(crest, wing, tail) class goes to ``train`` when ``crest + wing + tail`` is even, else to ``test`` (36 each),
so every detail occurs in both splits and held-out classes are new combinations of seen details.

Output is an ImageFolder per split: ``<out>/train/<class>/<i>.png`` and ``<out>/test/<class>/<i>.png``.
Generation is deterministic for a seed (one ``numpy`` generator per image, seeded from
``(seed, class, index)``) and fast (a few milliseconds per image).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "CRESTS",
    "TAILS",
    "WING_MARKS",
    "SyntheticSpec",
    "class_names",
    "generate_synthetic",
    "render_bird",
    "split_of",
]

CRESTS = ("bare", "spike", "trident", "knob", "plume", "fork")
WING_MARKS = ("dot", "bar", "twin", "ring")
TAILS = ("plain", "banded", "tipped")


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate.

    Attributes:
        image_size: side of the square PNGs in pixels.
        train_per_class: images per training class.
        test_per_class: images per held-out class.
        seed: generator seed.
    """

    image_size: int = 160
    train_per_class: int = 8
    test_per_class: int = 5
    seed: int = 0


def class_names() -> list[tuple[str, tuple[int, int, int]]]:
    """All ``(name, (crest, wing, tail))`` pairs, ``name = "<crest>-<wing>-<tail>"``, in a fixed order."""
    return [
        (f"{c}-{w}-{t}", (ci, wi, ti))
        for ci, c in enumerate(CRESTS)
        for wi, w in enumerate(WING_MARKS)
        for ti, t in enumerate(TAILS)
    ]


def split_of(parts: tuple[int, int, int]) -> str:
    """``train`` or ``test`` for a ``(crest, wing, tail)`` class."""
    return "train" if sum(parts) % 2 == 0 else "test"


def _rand_colour(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, size=3))


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """Vertical gradient between two random colours plus random clutter shapes."""
    top, bottom = np.array(_rand_colour(rng)), np.array(_rand_colour(rng))
    t = np.linspace(0.0, 1.0, size)[:, None, None]
    arr = (top * (1 - t) + bottom * t).repeat(size, axis=1).astype(np.uint8)
    img = Image.fromarray(arr)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(4, 10))):
        x0, y0 = rng.integers(-size // 4, size, size=2)
        w, h = rng.integers(size // 10, size // 3, size=2)
        box = [int(x0), int(y0), int(x0 + w), int(y0 + h)]
        colour = _rand_colour(rng)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour)
        else:
            draw.line(box, fill=colour, width=int(rng.integers(2, 6)))
    return img


def _draw_crest(draw: ImageDraw.ImageDraw, kind: int, hx: float, top: float, r: float, ink: tuple) -> None:
    """Crest on top of the head (centre x ``hx``, head top ``top``, head radius ``r``)."""
    h = 0.9 * r
    if CRESTS[kind] == "spike":
        draw.polygon([(hx - 0.25 * r, top + 2), (hx, top - h), (hx + 0.25 * r, top + 2)], fill=ink)
    elif CRESTS[kind] == "trident":
        for dx in (-0.45 * r, 0.0, 0.45 * r):
            draw.line([(hx + dx, top + 2), (hx + 1.3 * dx, top - h)], fill=ink, width=max(2, int(r / 5)))
    elif CRESTS[kind] == "knob":
        draw.ellipse([hx - 0.35 * r, top - 0.75 * r, hx + 0.35 * r, top - 0.05 * r], fill=ink)
    elif CRESTS[kind] == "plume":
        draw.rectangle([hx - 0.6 * r, top - 0.45 * r, hx + 0.6 * r, top + 1], fill=ink)
    elif CRESTS[kind] == "fork":
        w = max(2, int(r / 5))
        draw.line([(hx, top + 2), (hx - 0.6 * r, top - h)], fill=ink, width=w)
        draw.line([(hx, top + 2), (hx + 0.6 * r, top - h)], fill=ink, width=w)


def _draw_wing(draw: ImageDraw.ImageDraw, kind: int, wx: float, wy: float, r: float, ink: tuple) -> None:
    """Mark on the wing centred at ``(wx, wy)`` with size ``r``."""
    if WING_MARKS[kind] == "dot":
        draw.ellipse([wx - r, wy - r, wx + r, wy + r], fill=ink)
    elif WING_MARKS[kind] == "bar":
        draw.rectangle([wx - 2.2 * r, wy - 0.45 * r, wx + 2.2 * r, wy + 0.45 * r], fill=ink)
    elif WING_MARKS[kind] == "twin":
        for dx in (-1.3 * r, 1.3 * r):
            draw.ellipse([wx + dx - 0.7 * r, wy - 0.7 * r, wx + dx + 0.7 * r, wy + 0.7 * r], fill=ink)
    elif WING_MARKS[kind] == "ring":
        draw.ellipse([wx - 1.2 * r, wy - 1.2 * r, wx + 1.2 * r, wy + 1.2 * r], outline=ink, width=max(2, int(r / 2)))


def _draw_tail(draw: ImageDraw.ImageDraw, kind: int, x0: float, length: float, cy: float, ink: tuple) -> None:
    """Pattern on the tail, which spans ``x0 - length .. x0`` around height ``cy``."""
    if TAILS[kind] == "banded":
        x = x0 - 0.55 * length
        draw.line([(x, cy - 0.45 * length), (x, cy + 0.4 * length)], fill=ink, width=max(2, int(length / 6)))
    elif TAILS[kind] == "tipped":
        x, r = x0 - 0.85 * length, 0.2 * length
        draw.ellipse([x - r, cy - r, x + r, cy + r], fill=ink)


def render_bird(parts: tuple[int, int, int], rng: np.random.Generator, size: int = 160) -> Image.Image:
    """Draw one bird of class ``parts = (crest, wing, tail)`` with random nuisance.

    Args:
        parts: indices into :data:`CRESTS`, :data:`WING_MARKS` and :data:`TAILS`.
        rng: randomness for every nuisance factor.
        size: output side in pixels.

    Returns:
        An RGB PIL image ``size x size``.
    """
    img = _background(rng, size)
    layer_size = size * 2  # draw the bird large on a transparent layer, then rotate and scale it
    layer = Image.new("RGBA", (layer_size, layer_size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    body = _rand_colour(rng, 30, 226)
    ink = (20, 20, 20, 255) if sum(body) > 380 else (240, 240, 240, 255)
    c = layer_size / 2
    bw, bh = 0.34 * layer_size, 0.2 * layer_size
    tail = 0.2 * layer_size
    draw.polygon([(c - bw, c), (c - bw - tail, c - 0.5 * tail), (c - bw - tail, c + 0.4 * tail)], fill=(*body, 255))
    draw.ellipse([c - bw, c - bh, c + bw, c + bh], fill=(*body, 255))
    r = 0.11 * layer_size
    hx, hy = c + bw * 0.85, c - bh * 1.1
    draw.ellipse([hx - r, hy - r, hx + r, hy + r], fill=(*body, 255))
    draw.polygon(
        [(hx + 0.8 * r, hy - 0.3 * r), (hx + 1.9 * r, hy + 0.1 * r), (hx + 0.8 * r, hy + 0.4 * r)],
        fill=(230, 170, 40, 255),
    )
    draw.ellipse([hx + 0.2 * r, hy - 0.45 * r, hx + 0.55 * r, hy - 0.1 * r], fill=(10, 10, 10, 255))
    crest, wing, tail_kind = parts
    _draw_crest(draw, crest, hx, hy - r, r, ink)
    _draw_wing(draw, wing, c - 0.1 * bw, c + 0.05 * bh, 0.09 * layer_size, ink)
    _draw_tail(draw, tail_kind, c - bw, tail, c, ink)
    if rng.random() < 0.5:
        layer = layer.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    layer = layer.rotate(float(rng.uniform(-25, 25)), resample=Image.Resampling.BILINEAR)
    scale = float(rng.uniform(0.55, 0.85))
    side = max(8, round(size * scale))
    layer = layer.resize((side, side), Image.Resampling.BILINEAR)
    slack = size - side
    jitter = rng.integers(-(slack // 4), slack // 4 + 1, size=2)
    offset = (int(jitter[0]) + slack // 2, int(jitter[1]) + slack // 2)
    img.paste(layer, offset, layer)
    return img


def generate_synthetic(out: str | Path, spec: SyntheticSpec = SyntheticSpec()) -> dict[str, list[str]]:
    """Write the synthetic dataset as ``<out>/{train,test}/<class>/<i>.png``.

    Args:
        out: destination folder (created; existing files with the same names are overwritten).
        spec: sizes, counts and seed.

    Returns:
        ``{"train": [class names], "test": [class names]}``.
    """
    out = Path(out)
    classes: dict[str, list[str]] = {"train": [], "test": []}
    for k, (name, parts) in enumerate(class_names()):
        split = split_of(parts)
        classes[split].append(name)
        folder = out / split / name
        folder.mkdir(parents=True, exist_ok=True)
        count = spec.train_per_class if split == "train" else spec.test_per_class
        for i in range(count):
            rng = np.random.default_rng([spec.seed, k, i])
            render_bird(parts, rng, spec.image_size).save(folder / f"{i:04d}.png", compress_level=1)
    return classes
