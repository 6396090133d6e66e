"""Reference bundle ``model.ref.npz``: real uint8 inputs and PyTorch's embeddings for them (torch-free).

Written by the exporter beside every ONNX file; read on any box (a Jetson without torch) to prove a
backend's parity with PyTorch. Arrays (docs/design.md §5):

* ``images``: uint8 ``[M, S, S, 3]`` RGB, exactly what the runtime feeds the model;
* ``embeddings``: float32 ``[M, D]``, PyTorch fp32, L2-normalised;
* ``batch_sizes``: int64 ``[B]``, how the images were batched (sums to ``M``);
* ``meta``: a 0-d unicode array holding JSON ``{"thresholds", "family", "config", "toolkit_version"}``
  (``family`` absent in bundles written before the second family: read as ``frpt``).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frpt_runtime import __version__
from frpt_runtime.atomic import atomic_write
from frpt_runtime.errors import FrptError
from frpt_runtime.families import DEFAULT_FAMILY, ModelConfig, config_from_dict, family_of
from frpt_runtime.parity import THRESHOLDS

__all__ = ["RefBundle", "load_bundle", "save_bundle", "split_rows"]

_KEYS = ("images", "embeddings", "batch_sizes", "meta")


@dataclass(frozen=True)
class RefBundle:
    """The reference inputs and outputs of one export.

    Attributes:
        images: uint8 ``[M, S, S, 3]``.
        embeddings: float32 ``[M, D]``.
        batch_sizes: int64 ``[B]`` summing to ``M``.
        config: the model's config (any family; ``S == config.input_size``).
        thresholds: the parity thresholds in force when written.
        toolkit_version: version of the toolkit that wrote it.
    """

    images: np.ndarray
    embeddings: np.ndarray
    batch_sizes: np.ndarray
    config: ModelConfig
    thresholds: dict[str, float] = field(default_factory=lambda: dict(THRESHOLDS))
    toolkit_version: str = __version__

    def __post_init__(self) -> None:
        _validate(self.images, self.embeddings, self.batch_sizes, self.config.input_size)

    @property
    def meta(self) -> dict[str, Any]:
        return {
            "thresholds": dict(self.thresholds),
            "family": family_of(self.config),
            "config": self.config.to_dict(),
            "toolkit_version": self.toolkit_version,
        }

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(images [b, S, S, 3] uint8, embeddings [b, D] float32)`` in the recorded batching."""
        yield from zip(
            split_rows(self.images, self.batch_sizes), split_rows(self.embeddings, self.batch_sizes), strict=True
        )


def split_rows(array: np.ndarray, batch_sizes: np.ndarray) -> list[np.ndarray]:
    """``array`` ``[M, ...]`` cut along its first axis into consecutive batches of ``batch_sizes`` (summing to M)."""
    return np.split(array, np.cumsum(batch_sizes)[:-1])


def _validate(images: np.ndarray, embeddings: np.ndarray, batch_sizes: np.ndarray, size: int) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise FrptError(f"bundle images must be uint8 [M, {size}, {size}, 3], got {images.dtype} {list(images.shape)}")
    m = images.shape[0]
    if embeddings.dtype != np.float32 or embeddings.ndim != 2 or embeddings.shape[0] != m or m == 0:
        raise FrptError(
            f"bundle embeddings must be float32 [{m}, D] with M > 0, got {embeddings.dtype} {list(embeddings.shape)}"
        )
    if batch_sizes.dtype != np.int64 or batch_sizes.ndim != 1 or np.any(batch_sizes <= 0) or batch_sizes.sum() != m:
        raise FrptError(f"bundle batch_sizes must be positive int64 summing to {m}, got {batch_sizes.tolist()}")


def save_bundle(path: str | os.PathLike, bundle: RefBundle) -> Path:
    """Write ``bundle`` to ``path`` atomically (temp file in the same folder, then rename).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "images": bundle.images,
        "embeddings": bundle.embeddings,
        "batch_sizes": bundle.batch_sizes,
        "meta": np.array(json.dumps(bundle.meta, sort_keys=True)),
    }
    atomic_write(path, lambda handle: np.savez(handle, **arrays))
    return path


def load_bundle(path: str | os.PathLike) -> RefBundle:
    """Read and validate a reference bundle.

    Raises:
        FrptError: missing, unreadable or malformed file (one line naming what is wrong).
    """
    path = Path(path)
    if not path.is_file():
        raise FrptError(f"reference bundle {path} not found: export again with `frpt-export onnx` to write it")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in _KEYS if k not in data.files]
            if missing:
                raise FrptError(f"reference bundle {path} lacks arrays {missing}: re-export the model")
            arrays = {k: data[k] for k in _KEYS}
        meta = json.loads(str(arrays["meta"]))
        config = config_from_dict(str(meta.get("family", DEFAULT_FAMILY)), meta["config"], f"reference bundle {path}")
        thresholds = {k: float(meta["thresholds"][k]) for k in THRESHOLDS}
        version = str(meta["toolkit_version"])
    except FrptError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        reason = (str(exc).splitlines() or [""])[0]
        raise FrptError(
            f"reference bundle {path} is unreadable ({type(exc).__name__}: {reason}): re-export the model"
        ) from exc
    return RefBundle(
        images=arrays["images"],
        embeddings=arrays["embeddings"],
        batch_sizes=arrays["batch_sizes"],
        config=config,
        thresholds=thresholds,
        toolkit_version=version,
    )
