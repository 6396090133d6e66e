"""Prove a backend's parity with PyTorch on this box from the export's reference bundle (torch-free).

The bundle (``model.ref.npz`` beside the export) holds real uint8 input batches, PyTorch's fp32 embeddings for
them and what it was made for: the exported model's sha256, the precision that was exported, the model config.
The proof is bound to the bundle, never to the model under test:

* the model must be the one the bundle names -- an ONNX file's :func:`~frpt_runtime.onnx_files.model_sha256`,
  or for an engine the ``onnx_sha256`` its sidecar links it to -- and must claim the bundle's precision; a model
  whose identity or precision disagrees is **refused** (one line, exit 2), not checked under a warning, since
  a warning is lost in a CI log while the exit code reads as a pass;
* an engine whose sidecar names a bundle (``bundle_sha256``) is checked against exactly that file;
* the verdict applies the shared thresholds (:mod:`frpt_runtime.parity`) of the *bundle's* precision, so
  editing ``frpt.precision`` in a model cannot loosen them.

The backend runs the bundle's batches (split further only where the model's maximum batch is smaller) and
:func:`frpt_runtime.parity.compare_embeddings` judges the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from frpt_runtime.backends import backend_for_file
from frpt_runtime.backends.base import Backend, ModelInfo
from frpt_runtime.bundle import RefBundle, load_bundle
from frpt_runtime.contract import bundle_path_for
from frpt_runtime.digests import sha256_file
from frpt_runtime.errors import FrptError
from frpt_runtime.parity import ParityReport, compare_embeddings

__all__ = ["verify_backend", "verify_file", "verify_model"]

_FIX = "pass the bundle written with this model (--bundle), or export it again"


def _check_fits(info: ModelInfo, bundle: RefBundle) -> None:
    """The bundle's input size, embedding width and model config are the model's."""
    size = info.config.input_size
    if bundle.images.shape[1:3] != (size, size):
        raise FrptError(
            f"reference bundle images are {bundle.images.shape[1]}x{bundle.images.shape[2]} but {info.path.name} "
            f"takes {size}x{size}: {_FIX}"
        )
    if bundle.embeddings.shape[1] != info.embedding_dim:
        raise FrptError(
            f"reference bundle embeddings are D={bundle.embeddings.shape[1]} but {info.path.name} outputs "
            f"D={info.embedding_dim}: {_FIX}"
        )
    ours, theirs = info.config.to_dict(), bundle.config.to_dict()
    differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    if differ:
        raise FrptError(
            f"reference bundle was written for another model than {info.path.name} (config differs in: "
            f"{', '.join(differ)}): {_FIX}"
        )


def _check_identity(info: ModelInfo, bundle: RefBundle) -> None:
    """The model is the export the bundle was made for, and claims the precision that was exported."""
    if bundle.model_sha256 != info.export_sha256:
        what = "was built from" if info.onnx_sha256 is not None else "is"
        raise FrptError(
            f"reference bundle was made for the model with sha256 {bundle.model_sha256[:16]}..., but "
            f"{info.path.name} {what} {info.export_sha256[:16]}... (another export, or an edited file): {_FIX}"
        )
    if bundle.precision != info.precision:
        raise FrptError(
            f"{info.path.name} claims precision {info.precision} but its bundle was made for the {bundle.precision} "
            f"export (edited metadata or sidecar): export it again"
        )


def verify_backend(backend: Backend, bundle: RefBundle) -> ParityReport:
    """Run ``bundle``'s batches through ``backend`` and compare with its reference embeddings.

    Args:
        backend: activated here if needed, not closed.
        bundle: the reference bundle.

    Returns:
        The parity report (truthy when it passed), judged at the bundle's precision.

    Raises:
        FrptError: the bundle's input size, embedding width or config is not the model's, or the model is not the
            export the bundle was made for (sha256) or claims another precision.
    """
    info = backend.activate().info
    _check_fits(info, bundle)
    _check_identity(info, bundle)
    step = info.max_batch or bundle.images.shape[0]
    outputs = [
        backend.infer(images[start : start + step])
        for images, _ in bundle.batches()
        for start in range(0, images.shape[0], step)
    ]
    return compare_embeddings(bundle.embeddings, np.concatenate(outputs), bundle.precision)


def verify_model(backend: Backend, bundle_path: str | Path | None = None) -> ParityReport:
    """:func:`verify_backend` with the bundle from ``bundle_path`` (default: ``model.ref.npz`` beside the model).

    Raises:
        FrptError: as :func:`verify_backend`, or an engine's sidecar names another bundle file.
    """
    path = Path(bundle_path) if bundle_path is not None else bundle_path_for(backend.path)
    bundle = load_bundle(path)
    linked = backend.activate().info.bundle_sha256
    if linked is not None and sha256_file(path) != linked:
        raise FrptError(
            f"{path} is not the reference bundle {backend.path.name} was built with (its sidecar names sha256 "
            f"{linked[:16]}...): pass that bundle with --bundle"
        )
    return verify_backend(backend, bundle)


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
