"""The one small backend interface every runtime backend implements (after Polygraphy's runners).

Life cycle: construct (cheap, no heavy import) -> :meth:`Backend.activate` (loads the model, checks it
can run here) -> :meth:`Backend.submit` / :meth:`Backend.infer` any number of times -> :meth:`Backend.close`.
A backend is a context manager that activates on entry and closes on exit. Public methods validate,
then call the ``_``-prefixed implementation a backend overrides.

Data contract: input uint8 ``[N, S, S, 3]`` RGB (the ONNX ``images`` tensor), output float32 ``[N, D]``
L2-normalised embeddings. ``submit`` may return before the result exists (a device backend queues the
copy and the compute on its stream); at most :attr:`Backend.max_in_flight` submissions are pending.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frpt_runtime.contract import ExportMetadata, Lowering, Precision
from frpt_runtime.errors import FrptError
from frpt_runtime.families import ModelConfig

__all__ = ["Backend", "ModelInfo", "Pending"]


@dataclass(frozen=True)
class ModelInfo:
    """What a backend learned about its model file when it was activated.

    Attributes:
        path: the model file (``.onnx`` or ``.plan``).
        sha256: hex digest of that file.
        backend: ``onnxruntime`` or ``tensorrt``.
        metadata: the export's metadata (family config, precision, lowering, ...), from the file or its sidecar.
        embedding_dim: ``D``.
        min_batch, max_batch: batch range the model accepts (``max_batch`` None: unbounded).
        detail: backend-specific facts for the manifest (providers, TensorRT version, GPU, ...).
        onnx_sha256: for an engine, :func:`~frpt_runtime.onnx_files.model_sha256` of the ONNX model it was built
            from (its sidecar's); ``None`` when the model file is itself the ONNX model (then ``sha256`` is that).
        bundle_sha256: for an engine, the SHA-256 of the reference bundle its sidecar names, if any.
        batch_hint: what to do about a batch over ``max_batch`` (completes the refusal message).
    """

    path: Path
    sha256: str
    backend: str
    metadata: ExportMetadata
    embedding_dim: int
    min_batch: int = 1
    max_batch: int | None = None
    detail: tuple[tuple[str, str], ...] = ()
    onnx_sha256: str | None = None
    bundle_sha256: str | None = None
    batch_hint: str = ""

    @property
    def export_sha256(self) -> str:
        """The model hash a reference bundle must name: the ONNX model this file is, or was built from."""
        return self.sha256 if self.onnx_sha256 is None else self.onnx_sha256

    @property
    def config(self) -> ModelConfig:
        """The model config the export was made with (input size, crop, ...)."""
        return self.metadata.config

    @property
    def precision(self) -> Precision:
        """How the graph computes (I/O is uint8 in / float32 out either way)."""
        return self.metadata.precision

    @property
    def lowering(self) -> Lowering:
        return self.metadata.lowering

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Per-image input shape ``(S, S, 3)``."""
        return (self.config.input_size, self.config.input_size, 3)


class Pending:
    """A submitted batch; :meth:`result` blocks until its float32 ``[N, D]`` embeddings are on the host."""

    def __init__(self, wait: Callable[[], np.ndarray]) -> None:
        self._wait: Callable[[], np.ndarray] | None = wait
        self._value: np.ndarray | None = None

    @classmethod
    def done(cls, value: np.ndarray) -> Pending:
        """An already finished submission (synchronous backends)."""
        return cls(lambda: value)

    def result(self) -> np.ndarray:
        if self._wait is not None:
            self._value, self._wait = self._wait(), None
        assert self._value is not None
        return self._value


class Backend(abc.ABC):
    """Base class: validation and life cycle; subclasses implement ``_activate``/``_submit``/``_close``."""

    name: str = "backend"
    #: how many submissions may be pending before the caller must collect one (double buffering: 2).
    max_in_flight: int = 1

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._info: ModelInfo | None = None

    # ---- public, validating --------------------------------------------------------------------------
    def activate(self) -> Backend:
        """Load the model and check it can run here; idempotent.

        Raises:
            FrptError: missing/unreadable model, or one this box cannot run (with the fix in the message).
        """
        if self._info is None:
            if not self.path.is_file():
                raise FrptError(f"model file not found: {self.path}")
            self._info = self._activate()
        return self

    @property
    def info(self) -> ModelInfo:
        """Facts about the active model (raises if :meth:`activate` was not called)."""
        if self._info is None:
            raise RuntimeError(f"{type(self).__name__} used before activate()")
        return self._info

    def check_batch(self, batch: int) -> None:
        """Refuse a batch size outside the model's range, before any work.

        Raises:
            FrptError: ``batch`` below the minimum or above the maximum (e.g. an engine profile's).
        """
        info = self.info
        if batch < 1:
            raise FrptError(f"batch must be >= 1, got {batch}")
        if info.max_batch is not None and batch > info.max_batch:
            raise FrptError(
                f"batch {batch} exceeds the maximum {info.max_batch} of {self.path.name}: "
                f"pass --batch-size {info.max_batch}{info.batch_hint}"
            )
        if batch < info.min_batch:
            raise FrptError(f"batch {batch} is below the minimum {info.min_batch} of {self.path.name}")

    def submit(self, images: np.ndarray) -> Pending:
        """Queue one batch.

        Args:
            images: uint8 ``[N, S, S, 3]`` with ``S`` the model's input size and ``N`` within its batch range.

        Returns:
            A :class:`Pending` whose ``result()`` is float32 ``[N, D]``.

        Raises:
            ValueError: wrong dtype or shape (a caller bug).
            FrptError: batch outside the model's range.
        """
        info = self.info
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
            raise ValueError(f"images must be a uint8 numpy array, got {getattr(images, 'dtype', type(images))}")
        if images.ndim != 4 or images.shape[1:] != info.input_shape:
            raise ValueError(f"images must be [N, {', '.join(map(str, info.input_shape))}], got {list(images.shape)}")
        self.check_batch(images.shape[0])
        return self._submit(np.ascontiguousarray(images))

    def infer(self, images: np.ndarray) -> np.ndarray:
        """Synchronous :meth:`submit`: uint8 ``[N, S, S, 3]`` -> float32 ``[N, D]``."""
        return self.submit(images).result()

    def close(self) -> None:
        """Release the model and its memory; idempotent."""
        if self._info is not None:
            self._close()
            self._info = None

    def __enter__(self) -> Backend:
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- implementation hooks ------------------------------------------------------------------------
    @abc.abstractmethod
    def _activate(self) -> ModelInfo:
        """Load ``self.path`` (known to exist) and describe it."""

    @abc.abstractmethod
    def _submit(self, images: np.ndarray) -> Pending:
        """Run a validated, C-contiguous uint8 ``[N, S, S, 3]`` batch."""

    def _close(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing to free
        """Free resources (default: nothing to free)."""
