"""frpt_runtime.cuda_memory: a clear error without a GPU; a real pinned/device round trip with one."""

from __future__ import annotations

import numpy as np
import pytest

from frpt_runtime import cuda_memory as cm
from frpt_runtime.errors import FrptError


def _gpu_present() -> bool:
    try:
        cm.set_device(0)
    except FrptError:
        return False
    return True


def test_no_gpu_is_one_line_frpt_error() -> None:
    if _gpu_present():
        pytest.skip("a CUDA GPU is present: the no-GPU error cannot be shown")
    with pytest.raises(FrptError, match="CUDA cudaGetDeviceCount failed") as info:
        cm.set_device(0)
    assert "\n" not in str(info.value)


@pytest.mark.gpu
def test_pinned_device_round_trip_on_one_stream() -> None:
    if not _gpu_present():
        pytest.skip("no usable CUDA GPU and driver here")
    assert cm.compute_capability(0).count(".") == 1 and cm.device_name(0)
    data = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    host_in, host_out = cm.PinnedArray(data.shape, np.uint8), cm.PinnedArray(data.shape, np.uint8)
    device, stream, event = cm.DeviceBuffer(data.nbytes), cm.Stream(), cm.Event()
    try:
        host_in.array[...] = data
        cm.memcpy_htod_async(device, host_in, data.nbytes, stream)
        cm.memcpy_dtoh_async(host_out, device, data.nbytes, stream)
        event.record(stream)
        event.synchronize()
        np.testing.assert_array_equal(host_out.array, data)
        with pytest.raises(ValueError, match="exceeds a buffer"):
            cm.memcpy_htod_async(device, host_in, data.nbytes + 1, stream)
    finally:
        for item in (host_in, host_out, device):
            item.free()
        event.destroy()
        stream.destroy()
