"""The TensorRT backend's execution path (slots, shapes, addresses, copies, events) on a simulated GPU.

No TensorRT runtime can execute here, so ``cuda_memory`` and the ``tensorrt`` module are replaced by
fakes whose stream *defers* every queued operation until an event recorded after it is synchronised.
A result read before its event, a slot reused while busy, a wrong byte count or a stale tensor address
all produce wrong embeddings, which the toy graph's numpy reference catches.
"""

from __future__ import annotations

import itertools
import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from runtime_toys import (
    TOY_DIM,
    TOY_SIZE,
    expected_embeddings,
    make_image_folder,
    toy_bundle,
    toy_metadata,
    toy_plan,
    toy_reference,
)

from frpt_runtime import cuda_memory
from frpt_runtime.backends import create_backend

_ids = itertools.count(1)


class FakeGPU:
    """Device memory by address, and streams whose work runs only when an event after it is waited on."""

    def __init__(self) -> None:
        self.memory: dict[int, np.ndarray] = {}
        self.queue: list[Callable[[], None]] = []
        self.executed = 0

    def run_until(self, position: int) -> None:
        while self.executed < position:
            self.queue[self.executed]()
            self.executed += 1


def _fake_cuda(gpu: FakeGPU) -> types.SimpleNamespace:
    class DeviceBuffer:
        def __init__(self, nbytes: int) -> None:
            self.nbytes, self.ptr = nbytes, next(_ids)
            gpu.memory[self.ptr] = np.full(nbytes, 0xAB, np.uint8)

        def free(self) -> None:
            gpu.memory.pop(self.ptr)

    class PinnedArray:
        def __init__(self, shape: tuple[int, ...], dtype: type) -> None:
            self.array = np.full(shape, 0xAB if dtype == np.uint8 else np.nan, dtype)
            self.nbytes, self.ptr = self.array.nbytes, next(_ids)

        def free(self) -> None:
            self.array = None

    class Stream:
        handle = 7

        def synchronize(self) -> None:
            gpu.run_until(len(gpu.queue))

        def destroy(self) -> None:
            pass

    class Event:
        position = 0

        def record(self, stream: Stream) -> None:
            self.position = len(gpu.queue)

        def synchronize(self) -> None:
            gpu.run_until(self.position)

        def destroy(self) -> None:
            pass

    def htod(dst: DeviceBuffer, src: PinnedArray, nbytes: int, stream: Stream) -> None:
        snapshot = src.array  # the copy reads host memory when it runs, as a real async copy does
        gpu.queue.append(
            lambda: gpu.memory[dst.ptr].__setitem__(slice(0, nbytes), snapshot.view(np.uint8).reshape(-1)[:nbytes])
        )

    def dtoh(dst: PinnedArray, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
        gpu.queue.append(
            lambda: dst.array.view(np.uint8).reshape(-1).__setitem__(slice(0, nbytes), gpu.memory[src.ptr][:nbytes])
        )

    return types.SimpleNamespace(
        DeviceBuffer=DeviceBuffer,
        PinnedArray=PinnedArray,
        Stream=Stream,
        Event=Event,
        memcpy_htod_async=htod,
        memcpy_dtoh_async=dtoh,
    )


def _fake_trt(gpu: FakeGPU, weights: np.ndarray) -> types.SimpleNamespace:
    class Context:
        def __init__(self) -> None:
            self.shape: tuple[int, ...] = ()
            self.addresses: dict[str, int] = {}

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> None:
            assert name == "images"
            self.shape = tuple(shape)

        def set_tensor_address(self, name: str, ptr: int) -> None:
            self.addresses[name] = ptr

        def execute_async_v3(self, stream: int) -> bool:
            shape, src, dst = self.shape, self.addresses["images"], self.addresses["embedding"]

            def compute() -> None:
                count = int(np.prod(shape))
                images = gpu.memory[src][:count].reshape(shape)
                out = toy_reference(images, weights)
                gpu.memory[dst][: out.nbytes] = out.view(np.uint8).reshape(-1)

            gpu.queue.append(compute)
            return True

    class Engine:
        def get_tensor_shape(self, name: str) -> tuple[int, int]:
            return (-1, TOY_DIM)

        def create_execution_context(self) -> Context:
            return Context()

    class Runtime:
        def __init__(self, logger: object) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> Engine:
            return Engine()

    logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    return types.SimpleNamespace(__version__="10.3.0", Logger=logger, Runtime=Runtime)


@pytest.fixture
def simulated(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeGPU, np.ndarray]:
    gpu = FakeGPU()
    weights = np.random.default_rng(0).standard_normal((TOY_SIZE * TOY_SIZE * 3, TOY_DIM)).astype(np.float32)
    for name, value in vars(_fake_cuda(gpu)).items():
        monkeypatch.setattr(cuda_memory, name, value)
    monkeypatch.setattr(cuda_memory, "set_device", lambda device: None)
    monkeypatch.setattr(cuda_memory, "compute_capability", lambda device: "8.7")
    monkeypatch.setattr(cuda_memory, "device_name", lambda device: "Simulated Orin")
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_trt(gpu, weights))
    return gpu, weights


def test_double_buffered_batches_come_back_right(simulated: tuple[FakeGPU, np.ndarray], tmp_path: Path) -> None:
    gpu, weights = simulated
    images = np.random.default_rng(1).integers(0, 256, (40, TOY_SIZE, TOY_SIZE, 3), dtype=np.uint8)
    with create_backend(engine=toy_plan(tmp_path)) as backend:
        info = backend.info
        assert (info.max_batch, info.embedding_dim, dict(info.detail)["gpu"]) == (16, TOY_DIM, "Simulated Orin")
        first, second = backend.submit(images[:16]), backend.submit(images[16:21])
        assert gpu.executed == 0  # nothing ran yet: both batches are queued on the stream
        third = backend.submit(images[21:37])  # reuses slot 0: must wait for batch 1 to leave it
        results = [first.result(), second.result(), third.result()]
        np.testing.assert_allclose(np.concatenate(results), toy_reference(images[:37], weights), atol=1e-6)
        np.testing.assert_allclose(backend.infer(images[37:]), toy_reference(images[37:], weights), atol=1e-6)
    assert gpu.memory == {}  # close() freed every device buffer


def test_embed_folder_over_simulated_engine(simulated: tuple[FakeGPU, np.ndarray], tmp_path: Path) -> None:
    from frpt_runtime.embed import embed_folder

    _, weights = simulated
    folder = make_image_folder(tmp_path / "images", good=7)
    with create_backend(engine=toy_plan(tmp_path)) as backend:
        report = embed_folder(folder, backend, tmp_path / "out", batch=3)
    _names, expected = expected_embeddings(folder, weights)
    assert report.count == 7 and report.backend == "tensorrt"
    np.testing.assert_allclose(np.load(tmp_path / "out" / "embeddings.npy"), expected, atol=1e-6)


def test_cli_refuses_before_any_work(simulated: tuple[FakeGPU, np.ndarray], tmp_path: Path) -> None:

    from typer.testing import CliRunner

    from frpt_runtime.cli import embed_app

    folder = make_image_folder(tmp_path / "images", good=2)
    runner = CliRunner()
    over = runner.invoke(
        embed_app,
        [str(folder), "--engine", str(toy_plan(tmp_path)), "--batch-size", "32", "--out", str(tmp_path / "o")],
    )
    assert over.exit_code == 2 and over.stderr.strip() == (
        "error: batch 32 exceeds the maximum 16 of model.plan: "
        "pass --batch-size 16 or rebuild with a larger --max-batch"
    )
    other_gpu = toy_plan(tmp_path, compute_capability="9.0", gpu_name="H100")
    wrong = runner.invoke(embed_app, [str(folder), "--engine", str(other_gpu), "--out", str(tmp_path / "o")])
    assert wrong.exit_code == 2 and "compute capability 9.0 (H100), this GPU is 8.7" in wrong.stderr
    assert not (tmp_path / "o").exists()


def test_engine_parity_is_bound_to_its_onnx_and_bundle(simulated: tuple[FakeGPU, np.ndarray], tmp_path: Path) -> None:
    """plan -> sidecar onnx_sha256 -> bundle model_sha256 (and bundle_sha256): a sidecar edited to another precision,
    a bundle of another ONNX or another bundle file is refused; the right one passes at the bundle's precision."""
    from frpt_runtime.digests import sha256_file
    from frpt_runtime.errors import FrptError
    from frpt_runtime.verify import verify_model

    _, weights = simulated
    onnx_sha = "1" * 64
    bundle = toy_bundle(tmp_path / "model.ref.npz", weights, onnx_sha, precision="fp16")
    plan = toy_plan(tmp_path, onnx_sha256=onnx_sha, bundle_sha256=sha256_file(bundle))
    with create_backend(engine=plan) as backend:
        assert verify_model(backend).passed and verify_model(backend).precision == "fp16"
    fp32_meta = toy_plan(tmp_path, onnx_sha256=onnx_sha, onnx_metadata=toy_metadata(precision="fp32"))
    with create_backend(engine=fp32_meta) as backend, pytest.raises(FrptError, match="claims precision fp32"):
        verify_model(backend)
    other = toy_bundle(tmp_path / "other.ref.npz", weights, "2" * 64, precision="fp16")
    plan = toy_plan(tmp_path, onnx_sha256=onnx_sha)
    with create_backend(engine=plan) as backend, pytest.raises(FrptError, match="model.plan was built from 11111111"):
        verify_model(backend, other)
    copy = toy_bundle(tmp_path / "copy.ref.npz", weights, onnx_sha, precision="fp16")
    (tmp_path / "copy.ref.npz").write_bytes(copy.read_bytes() + b"\0")  # same content for a zip reader, other bytes
    plan = toy_plan(tmp_path, onnx_sha256=onnx_sha, bundle_sha256=sha256_file(bundle))
    with create_backend(engine=plan) as backend, pytest.raises(FrptError, match="is not the reference bundle"):
        verify_model(backend, tmp_path / "copy.ref.npz")
