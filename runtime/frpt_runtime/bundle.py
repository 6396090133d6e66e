"""Reference bundle ``model.ref.npz``: real uint8 inputs and PyTorch's embeddings for them, bound to one export.

Written by the exporter beside every ONNX file; read on any box (a Jetson without torch) to prove a
backend's parity with PyTorch. Arrays (docs/design.md §5):

* ``images``: uint8 ``[M, S, S, 3]`` RGB, exactly what the runtime feeds the model;
* ``embeddings``: float32 ``[M, D]``, PyTorch fp32, L2-normalised;
* ``batch_sizes``: int64 ``[B]``, how the images were batched (sums to ``M``);
* ``meta``: a 0-d unicode array holding JSON ``{"model_sha256", "precision", "lowering", "family", "config",
  "thresholds", "toolkit_version"}``.

The bundle records what it was made for -- the exported model's :func:`~frpt_runtime.onnx_files.model_sha256`
(external data included), the precision and lowering that were exported, the model config -- so the verifier
takes the precision (hence the thresholds) from the bundle, never from the model under test, and refuses a model
whose identity or precision disagrees (:func:`frpt_runtime.verify.verify_backend`). A bundle without these
fields (written before they existed) is refused: export again.

:func:`load_bundle` reads the ``.npy`` headers inside the archive first and refuses arrays of the wrong dtype,
rank or size before a byte of them is decompressed, so a small file cannot make the reader allocate gigabytes.
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
from frpt_runtime.contract import Lowering, Precision
from frpt_runtime.errors import FrptError
from frpt_runtime.families import ModelConfig, config_from_dict, family_of
from frpt_runtime.fields import choice, hex_digest, json_value, mapping, number, read_fields, string
from frpt_runtime.parity import THRESHOLDS

__all__ = ["MAX_BUNDLE_IMAGES", "RefBundle", "load_bundle", "save_bundle", "split_rows"]

_KEYS = ("images", "embeddings", "batch_sizes", "meta")
MAX_BUNDLE_IMAGES = 4096  # a reference bundle holds a few dozen images; more is not a bundle this toolkit wrote
_MAX_DIM = 65536
_MAX_META_CHARS = 1 << 20
_REEXPORT = "re-export the model (frpt-export onnx) to write its bundle"
_META_SPEC = {
    "model_sha256": hex_digest(),
    "precision": choice(tuple(p.value for p in Precision)),
    "lowering": choice(tuple(lowering.value for lowering in Lowering)),
    "family": string(),
    "config": mapping(string(), json_value()),
    "thresholds": mapping(choice(tuple(THRESHOLDS)), number()),
    "toolkit_version": string(),
}


@dataclass(frozen=True)
class RefBundle:
    """The reference inputs and outputs of one export.

    Attributes:
        images: uint8 ``[M, S, S, 3]``.
        embeddings: float32 ``[M, D]``.
        batch_sizes: int64 ``[B]`` summing to ``M``.
        config: the model's config (any family; ``S == config.input_size``).
        model_sha256: :func:`~frpt_runtime.onnx_files.model_sha256` of the exported model the bundle was made for.
        precision: the precision that was exported (decides the thresholds the verifier applies).
        lowering: the lowering that was exported.
        thresholds: the parity thresholds in force when written (informative: the verdict uses the shared ones).
        toolkit_version: version of the toolkit that wrote it.
    """

    images: np.ndarray
    embeddings: np.ndarray
    batch_sizes: np.ndarray
    config: ModelConfig
    model_sha256: str
    precision: Precision
    lowering: Lowering = Lowering.standard
    thresholds: dict[str, float] = field(default_factory=lambda: dict(THRESHOLDS))
    toolkit_version: str = __version__

    def __post_init__(self) -> None:
        _validate(self.images, self.embeddings, self.batch_sizes, self.config.input_size)

    @property
    def meta(self) -> dict[str, Any]:
        return {
            "model_sha256": self.model_sha256,
            "precision": Precision(self.precision).value,
            "lowering": Lowering(self.lowering).value,
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


def _headers(archive: zipfile.ZipFile, path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``key -> (shape, dtype)`` from each array's ``.npy`` header, read without decompressing the data."""
    names = set(archive.namelist())
    missing = [key for key in _KEYS if f"{key}.npy" not in names]
    if missing:
        raise FrptError(f"reference bundle {path} lacks arrays {missing}: {_REEXPORT}")
    headers = {}
    for key in _KEYS:
        with archive.open(f"{key}.npy") as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise ValueError(f"unsupported .npy format {version} for {key}")
        headers[key] = (shape, dtype)
    return headers


def _check_headers(headers: dict[str, tuple[tuple[int, ...], np.dtype]], size: int, path: Path) -> None:
    """Refuse arrays whose header already shows the wrong dtype, rank or size (before reading them)."""
    shape, dtype = headers["images"]
    if dtype != np.uint8 or len(shape) != 4 or shape[1:] != (size, size, 3) or not 0 < shape[0] <= MAX_BUNDLE_IMAGES:
        raise FrptError(
            f"reference bundle {path}: images must be uint8 [M, {size}, {size}, 3] with 0 < M <= {MAX_BUNDLE_IMAGES}, "
            f"the header says {dtype} {list(shape)}: {_REEXPORT}"
        )
    count = shape[0]
    shape, dtype = headers["embeddings"]
    if dtype != np.float32 or len(shape) != 2 or shape[0] != count or not 0 < shape[1] <= _MAX_DIM:
        raise FrptError(
            f"reference bundle {path}: embeddings must be float32 [{count}, D] with 0 < D <= {_MAX_DIM}, "
            f"the header says {dtype} {list(shape)}: {_REEXPORT}"
        )
    shape, dtype = headers["batch_sizes"]
    if dtype != np.int64 or len(shape) != 1 or not 0 < shape[0] <= count:
        raise FrptError(f"reference bundle {path}: batch_sizes must be int64 [B <= {count}], got {list(shape)}")


def _read_meta(archive: zipfile.ZipFile, headers: dict[str, tuple[tuple[int, ...], np.dtype]], path: Path) -> dict:
    shape, dtype = headers["meta"]
    if dtype.kind != "U" or shape != () or dtype.itemsize > 4 * _MAX_META_CHARS:
        raise FrptError(f"reference bundle {path}: meta must be one JSON string, got {dtype} {list(shape)}")
    with archive.open("meta.npy") as member:
        meta = json.loads(str(np.lib.format.read_array(member, allow_pickle=False)))
    source = f"reference bundle {path} meta"
    return read_fields(meta, _META_SPEC, source, _REEXPORT)


def load_bundle(path: str | os.PathLike) -> RefBundle:
    """Read and validate a reference bundle (headers and meta first, then the arrays).

    Raises:
        FrptError: missing, unreadable or malformed file, or one without the model identity (one line naming
            what is wrong).
    """
    path = Path(path)
    if not path.is_file():
        raise FrptError(f"reference bundle {path} not found: export again with `frpt-export onnx` to write it")
    try:
        with zipfile.ZipFile(path) as archive:
            headers = _headers(archive, path)
            meta = _read_meta(archive, headers, path)
            config = config_from_dict(meta["family"], meta["config"], f"reference bundle {path}")
            _check_headers(headers, config.input_size, path)
            arrays = {}
            for key in _KEYS[:3]:
                with archive.open(f"{key}.npy") as member:
                    arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
    except FrptError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        reason = (str(exc).splitlines() or [""])[0]
        raise FrptError(
            f"reference bundle {path} is unreadable ({type(exc).__name__}: {reason}): {_REEXPORT}"
        ) from None
    return RefBundle(
        images=arrays["images"],
        embeddings=arrays["embeddings"],
        batch_sizes=arrays["batch_sizes"],
        config=config,
        model_sha256=meta["model_sha256"],
        precision=Precision(meta["precision"]),
        lowering=Lowering(meta["lowering"]),
        thresholds={k: float(v) for k, v in meta["thresholds"].items()},
        toolkit_version=meta["toolkit_version"],
    )
