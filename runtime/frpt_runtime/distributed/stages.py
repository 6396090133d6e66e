"""What the Ray workers run: the model probe, the decode stage (tasks) and the embedding stage (actors).

Nothing here imports Ray: these are plain callables that Ray Data ships to the workers. Rows are flat dicts of
scalars, strings and bytes (no tensor columns: Arrow never has to infer a type from an empty list):

* input: ``shard``, ``chunk`` (ints), ``paths`` (JSON list of the chunk's absolute file paths);
* after :func:`decode_chunk`: ``shard``, ``chunk``, ``pixels`` (uint8 ``[n, S, S, 3]`` as bytes), ``rows`` (``n``),
  ``skipped`` (JSON ``[[offset in the chunk, reason], ...]``), ``error`` (empty, or why the chunk failed);
* after :class:`EmbedChunks`: the same with ``embedding`` (float32 little-endian ``[n, D]`` as bytes) for ``pixels``.

A chunk is decoded by :class:`~frpt_runtime.pipeline.BatchPipeline` with :func:`~frpt_runtime.images.load_image`
(the pipeline and decoder of ``frpt-embed``, so the same files are skipped with the same reasons) and embedded by
one :meth:`~frpt_runtime.backends.base.Backend.infer` call on exactly that chunk: the model sees ``frpt-embed``'s
batches. An exception other than a skipped file becomes the row's ``error`` (the driver retries the chunk and
reports it if it keeps failing); a worker or actor process that dies is retried by Ray itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frpt_runtime.backends import create_backend
from frpt_runtime.backends.base import Backend, ModelInfo
from frpt_runtime.backends.onnxruntime_backend import PROVIDER_ALIASES
from frpt_runtime.cli_common import EXTRA_OF_MODULE
from frpt_runtime.devices import parse_device
from frpt_runtime.errors import FrptError
from frpt_runtime.families import ModelConfig
from frpt_runtime.parity import ParityReport
from frpt_runtime.pipeline import BatchPipeline
from frpt_runtime.verify import verify_model

__all__ = ["BackendSpec", "EmbedChunks", "ProbeResult", "decode_chunk", "model_facts", "probe_model"]

_GPU_PROVIDERS = {"CUDAExecutionProvider", "TensorrtExecutionProvider"}


@dataclass(frozen=True)
class BackendSpec:
    """How to open the backend on a worker (the options of ``frpt-embed``; paths absolute on every node)."""

    onnx: Path | None = None
    engine: Path | None = None
    providers: tuple[str, ...] = ()
    device: str = "auto"
    plugin_lib: Path | None = None

    def create(self) -> Backend:
        """The backend (not activated); see :func:`frpt_runtime.backends.create_backend`."""
        return create_backend(
            onnx=self.onnx, engine=self.engine, providers=self.providers, device=self.device, plugin_lib=self.plugin_lib
        )

    @property
    def uses_gpu(self) -> bool:
        """A TensorRT engine, or ONNX Runtime on ``cuda`` or with a CUDA / TensorRT provider."""
        names = {PROVIDER_ALIASES.get(name.lower(), name) for name in self.providers}
        return self.engine is not None or parse_device(self.device).kind == "cuda" or bool(names & _GPU_PROVIDERS)


def model_facts(info: ModelInfo) -> dict[str, Any]:
    """What every actor's model must share with the probed one (the manifest records it once for all rows)."""
    return {"sha256": info.sha256, "backend": info.backend, "embedding_dim": info.embedding_dim, **dict(info.detail)}


@dataclass(frozen=True)
class ProbeResult:
    """The model as a worker sees it: its info and parity report, or why it cannot run there."""

    info: ModelInfo | None
    parity: ParityReport | None
    problem: str | None = None


def probe_model(spec: BackendSpec, batch: int, verify: bool, bundle: Path | None) -> ProbeResult:
    """Open the backend on a worker, check the batch size, optionally prove parity (``--verify``) there."""
    try:
        with spec.create() as backend:
            backend.check_batch(batch)
            parity = verify_model(backend, bundle) if verify else None
            return ProbeResult(backend.info, parity)
    except FrptError as exc:
        return ProbeResult(None, None, str(exc))
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        extra = EXTRA_OF_MODULE.get(root, "onnxruntime")
        return ProbeResult(None, None, f"a Ray worker cannot import {root!r}: pip install 'frpt-toolkit[{extra}]'")


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def decode_chunk(row: dict[str, Any], *, config: ModelConfig, workers: int) -> dict[str, Any]:
    """Decode one chunk (a Ray Data ``map`` function, run as a task) as ``config``'s model is fed: its input size,
    crop and decoder, as frpt-embed's pipeline; see the module docstring for the rows."""
    paths = [Path(item) for item in json.loads(row["paths"])]
    out = {"shard": row["shard"], "chunk": row["chunk"], "pixels": b"", "rows": 0, "skipped": "[]", "error": ""}
    try:
        with BatchPipeline.for_config(paths, config, batch=len(paths), workers=workers) as pipeline:
            (decoded,) = list(pipeline)
    except Exception as exc:  # noqa: BLE001 - any failure is the chunk's, reported by the driver after its retries
        return {**out, "error": _failure(exc)}
    offset = {path: i for i, path in enumerate(paths)}
    skipped = [[offset[path], reason] for path, reason in decoded.skipped]
    pixels = np.ascontiguousarray(decoded.images).tobytes()
    return {**out, "pixels": pixels, "rows": len(decoded.paths), "skipped": json.dumps(skipped)}


class EmbedChunks:
    """The embedding stage (a Ray Data callable class: one instance per actor, holding one backend).

    Args:
        spec: the backend to open.
        batch: the run's batch size (checked against the model).
        facts: :func:`model_facts` of the probed model; an actor whose model differs (another GPU, another
            ONNX Runtime build on its node) embeds nothing and fails its chunks with the difference.
    """

    def __init__(self, spec: BackendSpec, batch: int, facts: dict[str, Any]) -> None:
        self._backend: Backend | None = None
        self._problem = ""
        try:
            backend = spec.create().activate()
            backend.check_batch(batch)
        except Exception as exc:  # noqa: BLE001 - a model that cannot run on this node fails its chunks, named
            self._problem = _failure(exc)
            return
        mine = model_facts(backend.info)
        differ = sorted(key for key in facts.keys() | mine.keys() if facts.get(key) != mine.get(key))
        if differ:
            self._problem = f"this actor's model differs from the probed one in: {', '.join(differ)}"
            backend.close()
            return
        self._backend = backend

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {key: row[key] for key in ("shard", "chunk", "rows", "skipped", "error")}
        out["embedding"] = b""
        if out["error"] or self._backend is None:
            return {**out, "error": out["error"] or self._problem}
        try:
            shape = (row["rows"], *self._backend.info.input_shape)
            images = np.frombuffer(row["pixels"], np.uint8).reshape(shape)
            dim = self._backend.info.embedding_dim
            rows = self._backend.infer(images) if row["rows"] else np.empty((0, dim), np.float32)
        except Exception as exc:  # noqa: BLE001 - as in decode_chunk: the chunk fails, the driver retries it
            return {**out, "error": _failure(exc)}
        return {**out, "embedding": np.ascontiguousarray(rows, "<f4").tobytes()}
