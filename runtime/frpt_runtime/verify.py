"""Prove a backend's parity with PyTorch on this box from the export's reference bundle (torch-free).

The bundle (``model.ref.npz`` beside the export) holds real uint8 input batches and PyTorch's fp32
embeddings for them; the backend runs the same batches (split further only where the model's maximum
batch is smaller) and :func:`frpt_runtime.parity.compare_embeddings` judges the result with the shared
thresholds for the backend's precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from frpt_runtime.backends import backend_for_file
from frpt_runtime.backends.base import Backend
from frpt_runtime.bundle import RefBundle, load_bundle
from frpt_runtime.contract import bundle_path_for
from frpt_runtime.errors import FrptError
from frpt_runtime.parity import ParityReport, compare_embeddings

__all__ = ["verify_backend", "verify_file", "verify_model"]


def verify_backend(backend: Backend, bundle: RefBundle) -> ParityReport:
    """Run ``bundle``'s batches through ``backend`` and compare with its reference embeddings.

    Args:
        backend: activated here if needed, not closed.
        bundle: the reference bundle.

    Returns:
        The parity report (truthy when it passed).

    Raises:
        FrptError: the bundle's input size, embedding width or model config is not the model's (a bundle of
            another export).
    """
    info = backend.activate().info
    size = info.config.input_size
    if bundle.images.shape[1:3] != (size, size):
        raise FrptError(
            f"reference bundle images are {bundle.images.shape[1]}x{bundle.images.shape[2]} but {info.path.name} "
            f"takes {size}x{size}: pass the bundle written with this model (--bundle)"
        )
    if bundle.embeddings.shape[1] != info.embedding_dim:
        raise FrptError(
            f"reference bundle embeddings are D={bundle.embeddings.shape[1]} but {info.path.name} outputs "
            f"D={info.embedding_dim}: pass the bundle written with this model (--bundle)"
        )
    ours, theirs = info.config.to_dict(), bundle.config.to_dict()
    differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    if differ:
        raise FrptError(
            f"reference bundle was written for another model than {info.path.name} (config differs in: "
            f"{', '.join(differ)}): pass the bundle written with this model (--bundle)"
        )
    step = info.max_batch or bundle.images.shape[0]
    outputs = [
        backend.infer(images[start : start + step])
        for images, _ in bundle.batches()
        for start in range(0, images.shape[0], step)
    ]
    return compare_embeddings(bundle.embeddings, np.concatenate(outputs), info.precision)


def verify_model(backend: Backend, bundle_path: str | Path | None = None) -> ParityReport:
    """:func:`verify_backend` with the bundle from ``bundle_path`` (default: ``model.ref.npz`` beside the model)."""
    path = Path(bundle_path) if bundle_path is not None else bundle_path_for(backend.path)
    return verify_backend(backend, load_bundle(path))


def verify_file(
    model: str | Path,
    bundle_path: str | Path | None = None,
    *,
    device: str = "auto",
    providers: Sequence[str] = (),
    plugin_lib: str | Path | None = None,
) -> ParityReport:
    """``frpt-verify``: run ``model`` (``.onnx`` with ONNX Runtime, ``.plan`` with TensorRT) on its bundle.

    Raises:
        FrptError: the model cannot run here, or the bundle is missing, unreadable or of another model.
    """
    with backend_for_file(model, providers=providers, device=device, plugin_lib=plugin_lib) as backend:
        return verify_model(backend, bundle_path)
