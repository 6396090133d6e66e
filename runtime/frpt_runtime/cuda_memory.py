"""CUDA device memory, pinned host memory, streams and events: the one module that touches raw pointers.

Built on the CUDA runtime API of cuda-python (``cuda.bindings.runtime``; ``cuda.cudart`` on cuda-python
12.x), imported lazily. The runtime API works in each device's *primary context* — the same context
PyTorch and TensorRT use — so buffers made here coexist with torch tensors in one process.

Every call is checked; a failure is a :class:`FrptError` naming the CUDA error (no CUDA driver, out of
memory, ...).
"""

from __future__ import annotations

import ctypes
import importlib
from functools import lru_cache
from typing import Any

import numpy as np

from frpt_runtime.errors import FrptError

__all__ = [
    "DeviceBuffer",
    "Event",
    "PinnedArray",
    "Stream",
    "compute_capability",
    "device_count",
    "device_name",
    "memcpy_dtoh_async",
    "memcpy_htod_async",
    "set_device",
]


@lru_cache(maxsize=1)
def _runtime() -> Any:
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise FrptError("cuda-python is not installed: pip install 'frpt-toolkit[cuda]' (needed by the TensorRT backend)")


def _call(name: str, *args: Any) -> Any:
    """Call ``cudart.<name>(*args)`` and return its value(s), raising on a CUDA error."""
    rt = _runtime()
    result = getattr(rt, name)(*args)
    err, values = result[0], result[1:]
    if err != rt.cudaError_t.cudaSuccess:
        label = getattr(err, "name", str(err))
        raise FrptError(f"CUDA {name} failed: {label} (is a CUDA GPU and driver present, with free memory?)")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def device_count() -> int:
    """How many CUDA devices this process sees."""
    return int(_call("cudaGetDeviceCount"))


def set_device(device: int) -> None:
    """Make ``device`` current in this thread (its primary context, shared with torch/TensorRT)."""
    count = device_count()
    if not 0 <= device < count:
        raise FrptError(f"CUDA device {device} does not exist ({count} present): pass --device 0..{count - 1}")
    _call("cudaSetDevice", device)


def compute_capability(device: int) -> str:
    """``"major.minor"`` of ``device`` (e.g. ``"9.0"`` for an H100, ``"8.7"`` for Jetson Orin)."""
    rt = _runtime()
    attr = rt.cudaDeviceAttr
    major = _call("cudaDeviceGetAttribute", attr.cudaDevAttrComputeCapabilityMajor, device)
    minor = _call("cudaDeviceGetAttribute", attr.cudaDevAttrComputeCapabilityMinor, device)
    return f"{major}.{minor}"


def device_name(device: int) -> str:
    name = _call("cudaGetDeviceProperties", device).name
    return name.split(b"\0", 1)[0].decode() if isinstance(name, bytes) else str(name)


class DeviceBuffer:
    """``nbytes`` of device memory (``cudaMalloc``); ``ptr`` is the address TensorRT binds."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.ptr = int(_call("cudaMalloc", nbytes))

    def free(self) -> None:
        if self.ptr:
            _call("cudaFree", self.ptr)
            self.ptr = 0


class PinnedArray:
    """Page-locked host memory (``cudaMallocHost``) viewed as a numpy array of ``shape`` / ``dtype``.

    Async copies need pinned memory to actually run asynchronously to the host.
    """

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(shape)) * self.dtype.itemsize
        self.ptr = int(_call("cudaMallocHost", self.nbytes))
        raw = (ctypes.c_uint8 * self.nbytes).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=self.dtype).reshape(shape)

    def free(self) -> None:
        if self.ptr:
            self.array = np.empty((0,), self.dtype)
            _call("cudaFreeHost", self.ptr)
            self.ptr = 0


class Stream:
    """A non-blocking CUDA stream; ``handle`` is the integer TensorRT's ``execute_async_v3`` takes."""

    def __init__(self) -> None:
        self._stream = _call("cudaStreamCreateWithFlags", _runtime().cudaStreamNonBlocking)
        self.handle = int(self._stream)

    def synchronize(self) -> None:
        _call("cudaStreamSynchronize", self._stream)

    def destroy(self) -> None:
        if self.handle:
            _call("cudaStreamDestroy", self._stream)
            self.handle = 0


class Event:
    """A timing-free CUDA event: record on a stream, then wait for the work before it."""

    def __init__(self) -> None:
        self._event = _call("cudaEventCreateWithFlags", _runtime().cudaEventDisableTiming)

    def record(self, stream: Stream) -> None:
        _call("cudaEventRecord", self._event, stream.handle)

    def synchronize(self) -> None:
        _call("cudaEventSynchronize", self._event)

    def destroy(self) -> None:
        if self._event is not None:
            _call("cudaEventDestroy", self._event)
            self._event = None


def memcpy_htod_async(dst: DeviceBuffer, src: PinnedArray, nbytes: int, stream: Stream) -> None:
    """Queue a host-to-device copy of the first ``nbytes`` of ``src`` on ``stream``."""
    if nbytes > min(dst.nbytes, src.nbytes):
        raise ValueError(f"copy of {nbytes} bytes exceeds a buffer ({src.nbytes} -> {dst.nbytes})")
    _call("cudaMemcpyAsync", dst.ptr, src.ptr, nbytes, _runtime().cudaMemcpyKind.cudaMemcpyHostToDevice, stream.handle)


def memcpy_dtoh_async(dst: PinnedArray, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
    """Queue a device-to-host copy of the first ``nbytes`` of ``src`` on ``stream``."""
    if nbytes > min(dst.nbytes, src.nbytes):
        raise ValueError(f"copy of {nbytes} bytes exceeds a buffer ({src.nbytes} -> {dst.nbytes})")
    _call("cudaMemcpyAsync", dst.ptr, src.ptr, nbytes, _runtime().cudaMemcpyKind.cudaMemcpyDeviceToHost, stream.handle)
