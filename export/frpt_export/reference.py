"""Reference inputs and outputs of an export: images, PyTorch fp32 embeddings, ORT embeddings, parity.

The images are decoded by the runtime's own :func:`frpt_runtime.images.load_image`, so PyTorch, the bundle
and every backend see identical uint8 pixels: from ``--ref-images DIR`` or, by default, the photographs
that ship inside scikit-image (offline, real content). They are batched ``1, 3, 8`` so one bundle also
proves the dynamic batch axis.

Beside the bundle, the same batches are written in Polygraphy's JSON formats (``polygraphy.json.save_json``
of a list of feed dicts, and of a ``RunResults``), so a user with TensorRT can run::

    polygraphy run model.plan --trt --load-inputs model.ref.inputs.json \\
        --load-outputs model.ref.outputs.json --atol 1e-4
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from frpt.checkpoint import load_checkpoint
from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from frpt_runtime.bundle import RefBundle, load_bundle, split_rows
from frpt_runtime.contract import INPUT_NAME, OUTPUT_NAME, bundle_path_for
from frpt_runtime.errors import FrptError
from frpt_runtime.image_files import list_images
from frpt_runtime.images import ImageDecodeError, load_image
from frpt_runtime.parity import ParityReport
from frpt_runtime.verify import verify_backend

__all__ = [
    "BATCH_PATTERN",
    "MAX_REF_IMAGES",
    "live_parity",
    "reference_images",
    "split_batches",
    "torch_embeddings",
    "write_polygraphy_json",
]

BATCH_PATTERN = (1, 3, 8)
MAX_REF_IMAGES = sum(BATCH_PATTERN)
RUNNER_NAME = "pytorch-fp32"
# scikit-image's bundled photographs (no download), colour and grey, varied content.
_DEFAULT_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
    "camera.png",
    "brick.png",
    "grass.png",
    "coins.png",
)


def split_batches(count: int, pattern: tuple[int, ...] = BATCH_PATTERN) -> np.ndarray:
    """Batch sizes following ``pattern`` (repeated), the last one truncated: 12 -> [1, 3, 8], 5 -> [1, 3, 1]."""
    sizes: list[int] = []
    while sum(sizes) < count:
        sizes.append(min(pattern[len(sizes) % len(pattern)], count - sum(sizes)))
    return np.array(sizes, dtype=np.int64)


def _default_photo_paths() -> list[Path]:
    import skimage.data

    root = Path(skimage.data.__file__).parent
    return [root / name for name in _DEFAULT_PHOTOS]


def reference_images(
    size: int,
    crop_pct: float,
    folder: str | os.PathLike | None = None,
    limit: int = MAX_REF_IMAGES,
    decoder: str = "exact",
) -> np.ndarray:
    """Decode up to ``limit`` reference images to model input.

    Args:
        size, crop_pct: the model's input geometry.
        folder: image folder (recursive, sorted); undecodable files are skipped. ``None``: bundled photos.
        limit: maximum number of images.
        decoder: the model config's ``decoder`` (see :func:`frpt_runtime.images.load_image`).

    Returns:
        uint8 ``[M, size, size, 3]``.

    Raises:
        FrptError: the folder is missing or holds no decodable image.
    """
    paths = list_images(folder) if folder is not None else _default_photo_paths()
    images: list[np.ndarray] = []
    for path in paths:
        if len(images) == limit:
            break
        try:
            images.append(load_image(path, size, crop_pct, decoder))
        except ImageDecodeError:
            continue
    if not images:
        raise FrptError(f"no decodable image in {folder}: pass a folder of photos")
    return np.stack(images)


def torch_embeddings(model: nn.Module, images: np.ndarray, batch_sizes: np.ndarray) -> np.ndarray:
    """PyTorch fp32 embeddings, batch by batch: uint8 ``[M, S, S, 3]`` -> float32 ``[M, D]``."""
    out = [
        model.embed_uint8(torch.from_numpy(np.ascontiguousarray(batch))).numpy()
        for batch in split_rows(images, batch_sizes)
    ]
    return np.concatenate(out).astype(np.float32)


def write_polygraphy_json(
    inputs_path: Path, outputs_path: Path, images: np.ndarray, embeddings: np.ndarray, batch_sizes: np.ndarray
) -> None:
    """Write the batches as Polygraphy ``--load-inputs`` / ``--load-outputs`` files (one iteration per batch)."""
    from polygraphy.comparator import IterationResult, RunResults
    from polygraphy.json import save_json
    from polygraphy.logger import G_LOGGER

    feeds = [{INPUT_NAME: np.ascontiguousarray(batch)} for batch in split_rows(images, batch_sizes)]
    iterations = [
        IterationResult({OUTPUT_NAME: np.ascontiguousarray(batch)}, runner_name=RUNNER_NAME)
        for batch in split_rows(embeddings, batch_sizes)
    ]
    results = RunResults()
    results.add(iterations, runner_name=RUNNER_NAME)
    with G_LOGGER.verbosity(G_LOGGER.WARNING):  # keep Polygraphy's "Saving ..." lines off stdout
        save_json(feeds, str(inputs_path), description="FRPT reference inputs")
        save_json(results, str(outputs_path), description="FRPT PyTorch fp32 reference outputs")


def live_parity(
    ckpt: str | os.PathLike, onnx_path: str | os.PathLike, images: str | os.PathLike | None = None, max_images: int = 64
) -> ParityReport:
    """PyTorch (the checkpoint, now) vs ONNX Runtime (the export, through the runtime's backend and verifier).

    The export's reference bundle (beside ``onnx_path``) says what was exported -- the model's sha256 and its
    precision -- so the thresholds come from it, and an ONNX file edited after the export is refused.

    Args:
        ckpt: the checkpoint the export was made from.
        onnx_path: the exported file.
        images: image folder to compare on; ``None``: the reference bundle's images beside ``onnx_path``.
        max_images: at most this many images of ``images``.

    Raises:
        FrptError: unreadable checkpoint, export or bundle; an export that is not the one its bundle was made
            for; ``max_images < 1``; no decodable image.
    """
    if max_images < 1:
        raise FrptError(f"--max-images must be >= 1, got {max_images}")
    exported = load_bundle(bundle_path_for(onnx_path))  # what was exported: model hash, precision (never the file's)
    with OnnxRuntimeBackend(onnx_path) as backend:  # reads the file's metadata first: a wrong file fails fast
        model = load_checkpoint(ckpt)
        cfg = model.config
        if cfg != backend.info.config:
            ours, theirs = cfg.to_dict(), backend.info.config.to_dict()
            differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
            raise FrptError(
                f"{ckpt} is not the model {onnx_path} was exported from (config differs in: {', '.join(differ)})"
            )
        if images is None:
            pixels = exported.images
        else:
            pixels = reference_images(cfg.input_size, cfg.crop_pct, images, max_images, cfg.decoder)
        batch_sizes = split_batches(len(pixels))
        live = RefBundle(
            pixels,
            torch_embeddings(model, pixels, batch_sizes),
            batch_sizes,
            cfg,
            model_sha256=exported.model_sha256,
            precision=exported.precision,
            lowering=exported.lowering,
        )
        return verify_backend(backend, live)
