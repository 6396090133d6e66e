"""TensorRT backend: a serialised engine (``.plan``) + its sidecar ``<plan>.json`` (+ the plugin library).

Refuses, before any work, in this order: a missing sidecar; no TensorRT module; a plan built by another
TensorRT flavour/version or for another GPU architecture (:func:`frpt_runtime.engine_sidecar.check_compatible`);
a plan whose bytes differ from the sidecar's hash; a plugin-lowered engine whose plugin library cannot
be loaded. A batch over the profile's maximum is refused by :meth:`Backend.check_batch` (the sidecar's
``max_batch``).

Execution: one execution context, one CUDA stream, two slots (pinned uint8 input, device input,
device output, pinned float32 output, event) used alternately — the caller submits batch ``k + 1``
while batch ``k`` computes (double buffering); ``set_input_shape`` per batch, ``execute_async_v3``.
Reusing a slot first copies out its previous batch's rows, so a third submission never clobbers an
uncollected result (it only stops overlapping).
The TensorRT module is picked at first use: ``tensorrt`` (10.x / 11.x) if importable, else ``tensorrt_rtx``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frpt_runtime import cuda_memory as cm
from frpt_runtime.backends.base import Backend, ModelInfo, Pending
from frpt_runtime.contract import INPUT_NAME, OUTPUT_NAME
from frpt_runtime.devices import parse_device
from frpt_runtime.digests import sha256_file
from frpt_runtime.engine_sidecar import check_compatible, read_sidecar
from frpt_runtime.errors import FrptError
from frpt_runtime.trt_module import import_tensorrt

__all__ = ["TensorRTBackend"]

RUNTIME_HINT = "install it for this box (JetPack, NGC or pip tensorrt), or run the ONNX file with --onnx (ONNX Runtime)"


@dataclass
class _Slot:
    """Buffers for one batch in flight."""

    host_in: cm.PinnedArray
    dev_in: cm.DeviceBuffer
    dev_out: cm.DeviceBuffer
    host_out: cm.PinnedArray
    done: cm.Event
    last: Pending | None = None  # the slot's latest submission, until its rows are copied out

    def free(self) -> None:
        for item in (self.host_in, self.dev_in, self.dev_out, self.host_out):
            item.free()
        self.done.destroy()


class TensorRTBackend(Backend):
    """Runs an FRPT engine with TensorRT.

    Args:
        path: the ``.plan`` file (its sidecar ``<plan>.json`` beside it).
        device: ``auto``, ``cuda`` or ``cuda:N`` (GPU 0 unless ``cuda:N``); ``cpu`` is refused.
        plugin_lib: path of ``libfrpt_plugins`` (default: ``FRPT_PLUGIN_LIB`` or the packaged location).
    """

    name = "tensorrt"
    max_in_flight = 2

    def __init__(self, path: str | Path, *, device: str = "auto", plugin_lib: str | Path | None = None) -> None:
        super().__init__(path)
        parsed = parse_device(device)
        if parsed.kind == "cpu":
            raise FrptError("a TensorRT engine runs on a GPU: pass --device cuda[:N], or run the ONNX file with --onnx")
        self.device = parsed.ordinal
        self.plugin_lib = plugin_lib
        self._engine: Any = None
        self._context: Any = None
        self._stream: cm.Stream | None = None
        self._slots: list[_Slot] = []
        self._next_slot = 0

    def _activate(self) -> ModelInfo:
        # Host-side facts first (sidecar, TensorRT version, plan hash), so a wrong plan is named as such even on a
        # box whose CUDA is broken; then the GPU's architecture.
        sidecar = read_sidecar(self.path)
        trt, flavour = import_tensorrt(RUNTIME_HINT)
        check_compatible(sidecar, trt_flavour=flavour, trt_version=trt.__version__, compute_capability=None)
        if sha256_file(self.path) != sidecar.plan_sha256:
            raise FrptError(f"{self.path} does not match its sidecar's plan_sha256: rebuild with `frpt-export trt`")
        cm.set_device(self.device)
        capability = cm.compute_capability(self.device)
        check_compatible(sidecar, trt_flavour=flavour, trt_version=trt.__version__, compute_capability=capability)
        if sidecar.plugin_required:
            from frpt_runtime.plugin_library import load_plugin_library

            load_plugin_library(self.plugin_lib, trt=trt)
        metadata = sidecar.metadata
        try:
            dim = self._load_engine(trt, metadata.config.input_size, sidecar.max_batch)
        except BaseException:
            self._close()
            raise
        return ModelInfo(
            path=self.path,
            sha256=sidecar.plan_sha256,
            backend=self.name,
            metadata=metadata,
            embedding_dim=dim,
            min_batch=sidecar.min_batch,
            max_batch=sidecar.max_batch,
            onnx_sha256=sidecar.onnx_sha256,
            bundle_sha256=sidecar.bundle_sha256,
            batch_hint=" or rebuild with a larger --max-batch",
            detail=(
                ("tensorrt", f"{flavour} {trt.__version__}"),
                ("gpu", cm.device_name(self.device)),
                ("compute_capability", capability),
            ),
        )

    def _load_engine(self, trt: Any, size: int, max_batch: int) -> int:
        """Deserialise the plan, make the context, stream and two buffer slots; return ``D``."""
        logger = trt.Logger(trt.Logger.WARNING)
        self._engine = trt.Runtime(logger).deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise FrptError(
                f"TensorRT could not deserialise {self.path}: rebuild it with `frpt-export trt` on this box"
            )
        shape = self._engine.get_tensor_shape(OUTPUT_NAME)  # trt.Dims: no negative indexing
        dim = int(shape[len(shape) - 1])
        if dim <= 0:
            raise FrptError(f"{self.path}: output '{OUTPUT_NAME}' has no static width: re-export and rebuild")
        self._context = self._engine.create_execution_context()
        self._stream = cm.Stream()
        image_bytes = size * size * 3
        for _ in range(self.max_in_flight):
            self._slots.append(
                _Slot(
                    host_in=cm.PinnedArray((max_batch, size, size, 3), np.uint8),
                    dev_in=cm.DeviceBuffer(max_batch * image_bytes),
                    dev_out=cm.DeviceBuffer(max_batch * dim * 4),
                    host_out=cm.PinnedArray((max_batch, dim), np.float32),
                    done=cm.Event(),
                )
            )
        return dim

    def _submit(self, images: np.ndarray) -> Pending:
        assert self._stream is not None
        slot = self._slots[self._next_slot]
        self._next_slot = (self._next_slot + 1) % len(self._slots)
        if slot.last is not None:
            slot.last.result()  # copy out the previous batch's rows (if uncollected) before the slot is reused
        count = images.shape[0]
        slot.host_in.array[:count] = images
        cm.memcpy_htod_async(slot.dev_in, slot.host_in, images.nbytes, self._stream)
        self._context.set_input_shape(INPUT_NAME, tuple(images.shape))
        self._context.set_tensor_address(INPUT_NAME, slot.dev_in.ptr)
        self._context.set_tensor_address(OUTPUT_NAME, slot.dev_out.ptr)
        if not self._context.execute_async_v3(self._stream.handle):
            raise FrptError(f"TensorRT failed to enqueue a batch of {count} for {self.path.name}")
        dim = self.info.embedding_dim
        cm.memcpy_dtoh_async(slot.host_out, slot.dev_out, count * dim * 4, self._stream)
        slot.done.record(self._stream)

        def wait() -> np.ndarray:
            slot.done.synchronize()
            return slot.host_out.array[:count].copy()

        slot.last = Pending(wait)
        return slot.last

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()
        for slot in self._slots:
            slot.free()
        if self._stream is not None:
            self._stream.destroy()
        self._slots, self._stream, self._context, self._engine = [], None, None, None
