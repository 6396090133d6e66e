"""Backends: the shared interface, ONNX Runtime on hand-built contract-obeying graphs (``runtime_toys``),
TensorRT's refusals."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from runtime_toys import (
    TOY_DIM,
    TOY_SIZE,
    make_toy_onnx,
    toy_metadata,
    toy_plan,
    toy_reference,
    toy_sidecar,
)

from frpt_runtime.backends import create_backend
from frpt_runtime.backends.onnxruntime_backend import (
    BATCH_PIXEL_BUDGET,
    OnnxRuntimeBackend,
    max_batch_for,
    resolve_providers,
)
from frpt_runtime.contract import ExportMetadata
from frpt_runtime.devices import Device
from frpt_runtime.engine_sidecar import sha256_file, write_sidecar
from frpt_runtime.errors import FrptError


@pytest.fixture
def toy_onnx(tmp_path: Path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "toy.onnx"
    return path, make_toy_onnx(path)


def test_ort_backend_runs_contract_graph(toy_onnx: tuple[Path, np.ndarray]) -> None:
    path, weights = toy_onnx
    images = np.random.default_rng(1).integers(0, 256, (5, TOY_SIZE, TOY_SIZE, 3), dtype=np.uint8)
    with OnnxRuntimeBackend(path) as backend:
        info = backend.info
        assert (info.embedding_dim, info.precision, info.lowering, info.backend) == (
            TOY_DIM,
            "fp32",
            "standard",
            "onnxruntime",
        )
        assert info.config.input_size == TOY_SIZE and info.sha256 == sha256_file(path)
        assert dict(info.detail)["providers"] == "CPUExecutionProvider"
        out = backend.infer(images)
        assert out.dtype == np.float32 and out.shape == (5, TOY_DIM)
        np.testing.assert_allclose(out, toy_reference(images, weights), atol=1e-5)
        np.testing.assert_allclose(backend.infer(images[2:3]), out[2:3], atol=1e-6)  # batch-size independent
    with pytest.raises(RuntimeError, match="before activate"):
        _ = backend.info


def test_ort_backend_validates_inputs(toy_onnx: tuple[Path, np.ndarray]) -> None:
    with OnnxRuntimeBackend(toy_onnx[0]) as backend:
        with pytest.raises(ValueError, match="uint8"):
            backend.infer(np.zeros((1, TOY_SIZE, TOY_SIZE, 3), np.float32))
        with pytest.raises(ValueError, match=rf"\[N, {TOY_SIZE}, {TOY_SIZE}, 3\]"):
            backend.infer(np.zeros((1, 8, 8, 3), np.uint8))
        with pytest.raises(FrptError, match="batch must be >= 1"):
            backend.check_batch(0)
        cap = max_batch_for(TOY_SIZE)  # issue 9: an unbounded ONNX Runtime batch was killed by the OOM killer
        assert backend.info.max_batch == cap == BATCH_PIXEL_BUDGET // TOY_SIZE**2 and max_batch_for(224) == 256
        backend.check_batch(cap)
        with pytest.raises(
            FrptError, match=f"batch {cap + 1} exceeds the maximum {cap} of toy.onnx: pass --batch-size"
        ):
            backend.check_batch(cap + 1)


def test_ort_backend_probes_dynamic_embedding_width(tmp_path: Path) -> None:
    path = tmp_path / "dyn.onnx"
    make_toy_onnx(path, dim=5)
    model = onnx.load(path)
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "D"
    onnx.save(model, path)
    with OnnxRuntimeBackend(path) as backend:
        assert backend.info.embedding_dim == 5


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({}, "no frpt.config, frpt.toolkit_version, frpt.lowering, frpt.precision, frpt.opset metadata"),
        ({**toy_metadata(), "frpt.config": "{not json"}, "unreadable frpt.config"),
        ({**toy_metadata(), "frpt.precision": "int8"}, "frpt.precision is 'int8', expected one of fp32, fp16"),
        ({**toy_metadata(), "frpt.family": "other"}, "unknown model family 'other'"),
        (toy_metadata(TOY_SIZE + 8), "metadata says \\[N, "),  # config edited: graph takes another size
    ],
)
def test_ort_backend_refuses_bad_metadata(tmp_path: Path, metadata: dict[str, str], message: str) -> None:
    path = tmp_path / "bad.onnx"
    make_toy_onnx(path, metadata=metadata)
    with pytest.raises(FrptError, match=message):
        OnnxRuntimeBackend(path).activate()


def test_missing_and_garbage_model_files(tmp_path: Path) -> None:
    with pytest.raises(FrptError, match="model file not found"):
        OnnxRuntimeBackend(tmp_path / "none.onnx").activate()
    for content, message in [
        (b"not a protobuf", "is not a readable ONNX file"),  # the external-data walk reads it first
        (b"\x08\x01", "ONNX Runtime cannot load"),  # a protobuf, but no model
    ]:
        (tmp_path / "junk.onnx").write_bytes(content)
        with pytest.raises(FrptError, match=message) as info:
            OnnxRuntimeBackend(tmp_path / "junk.onnx").activate()
        assert "\n" not in str(info.value)


def test_plugin_graph_loads_with_the_custom_op(tmp_path: Path) -> None:
    """The session of a graph holding the custom node is created (the op registered on demand); running real
    plugin-lowered exports is proven in test_export.py."""
    path = tmp_path / "plugin.onnx"
    make_toy_onnx(path, metadata=toy_metadata(lowering="plugin"), plugin_node=True)
    with OnnxRuntimeBackend(path) as backend:
        assert backend.info.lowering == "plugin" and backend.info.embedding_dim == TOY_DIM


def test_plugin_node_breaking_the_contract_is_one_line_error(tmp_path: Path) -> None:
    """The numpy op never raises inside ONNX Runtime (the extension would kill the process): the backend does."""
    path = tmp_path / "plugin.onnx"
    make_toy_onnx(path, metadata=toy_metadata(lowering="plugin"), plugin_node=True)
    model = onnx.load(path)
    (node,) = [n for n in model.graph.node if n.domain == "frpt"]
    (attr,) = [a for a in node.attribute if a.name == "align_corners"]
    attr.i = 0
    onnx.save(model, path)
    images = np.zeros((1, TOY_SIZE, TOY_SIZE, 3), np.uint8)
    with OnnxRuntimeBackend(path) as backend, pytest.raises(FrptError, match="align_corners=1 only.*re-export"):
        backend.infer(images)


def test_plugin_graph_without_extensions_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plugin.onnx"
    make_toy_onnx(path, metadata=toy_metadata(lowering="plugin"), plugin_node=True)
    monkeypatch.setitem(sys.modules, "onnxruntime_extensions", None)  # import fails as on a runtime-only box
    with pytest.raises(FrptError, match="plugin lowering.*onnxruntime-extensions.*TensorRT") as info:
        OnnxRuntimeBackend(path).activate()
    assert "\n" not in str(info.value)


def test_resolve_providers() -> None:
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    auto, cpu, gpu1 = Device("auto"), Device("cpu"), Device("cuda", 1)
    assert resolve_providers([], available, auto) == resolve_providers([], available, cpu) == ["CPUExecutionProvider"]
    assert resolve_providers([], available, gpu1) == [("CUDAExecutionProvider", {"device_id": "1"})]
    assert resolve_providers(["cuda", "cpu"], available, gpu1) == [
        ("CUDAExecutionProvider", {"device_id": "1"}),
        "CPUExecutionProvider",
    ]
    with pytest.raises(FrptError, match="'tensorrt' is not available"):
        resolve_providers(["tensorrt"], available, auto)
    with pytest.raises(FrptError, match="--device cpu contradicts --providers cuda"):
        resolve_providers(["cuda"], available, cpu)
    with pytest.raises(FrptError, match="--device cuda:1 needs a GPU provider"):
        resolve_providers(["cpu"], available, gpu1)


def test_device_out_of_range_or_contradicting_the_provider_is_refused(
    toy_onnx: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 9: ``--device 99`` / ``-1`` were accepted on a CPU run."""
    import onnxruntime
    from typer.testing import CliRunner

    from frpt_runtime import cuda_memory
    from frpt_runtime.cli import verify_app
    from frpt_runtime.devices import parse_device

    for text in ("99", "-1", "cuda:-1", "cpu:0", "gpu"):
        with pytest.raises(FrptError, match="is not one of auto, cpu, cuda, cuda:N"):
            parse_device(text)
        result = CliRunner().invoke(verify_app, [str(toy_onnx[0]), "--device", text])
        assert result.exit_code == 2 and "--device" in result.stderr and "Usage" in result.stderr  # parse time
    result = CliRunner().invoke(verify_app, [str(toy_onnx[0]), "--device", "cuda:1", "--providers", "cpu"])
    assert result.exit_code == 2 and "--device cuda:1 needs a GPU provider" in result.stderr
    gpu_build = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: gpu_build)
    monkeypatch.setattr(cuda_memory, "device_count", lambda: 2)
    with pytest.raises(FrptError, match=r"--device cuda:5: CUDA device 5 does not exist \(2 present\)"):
        OnnxRuntimeBackend(toy_onnx[0], device="cuda:5").activate()
    monkeypatch.setattr(cuda_memory, "_call", lambda name, *args: 1 if name == "cudaGetDeviceCount" else None)
    with pytest.raises(FrptError, match="CUDA device 3 does not exist"):
        cuda_memory.set_device(3)  # the TensorRT backend's path


def test_export_metadata_reads_config() -> None:
    meta = ExportMetadata.from_props(toy_metadata(96, "fp16", "plugin"), Path("m.onnx"))
    assert (meta.config.input_size, meta.precision, meta.lowering, meta.family) == (96, "fp16", "plugin", "frpt")


def test_create_backend_needs_exactly_one_model(tmp_path: Path) -> None:
    with pytest.raises(FrptError, match="exactly one model"):
        create_backend()
    with pytest.raises(FrptError, match="exactly one model"):
        create_backend(onnx="a.onnx", engine="a.plan")
    with pytest.raises(FrptError, match="ONNX Runtime only"):
        create_backend(engine="a.plan", providers=["cpu"])
    assert create_backend(engine=tmp_path / "a.plan").name == "tensorrt"
    with pytest.raises(FrptError, match="pass it with --engine"):
        create_backend(onnx=tmp_path / "a.plan")
    with pytest.raises(FrptError, match="pass it with --onnx"):
        create_backend(engine=tmp_path / "a.onnx")


# ---- TensorRT: every refusal happens before deserialisation, testable without TensorRT or a GPU ------------


class _FakeRuntime:
    """Stands in for ``trt.Runtime``: records that deserialisation was reached, returns no engine."""

    reached = False

    def __init__(self, logger: object) -> None:
        pass

    def deserialize_cuda_engine(self, data: bytes) -> None:
        _FakeRuntime.reached = True
        return None


@pytest.fixture
def fake_trt_box(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """A fake TensorRT 10.3 module on a fake compute-capability-8.7 GPU."""
    from frpt_runtime import cuda_memory

    logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt = types.SimpleNamespace(__version__="10.3.0", Logger=logger, Runtime=_FakeRuntime)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(cuda_memory, "set_device", lambda device: None)
    monkeypatch.setattr(cuda_memory, "compute_capability", lambda device: "8.7")
    _FakeRuntime.reached = False
    return trt


def test_trt_refuses_missing_sidecar(tmp_path: Path) -> None:
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"x")
    with pytest.raises(FrptError, match="sidecar .* not found"):
        create_backend(engine=plan).activate()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"trt_version": "11.1.0"}, "built with tensorrt 11.1.0, this is tensorrt 10.3.0"),
        ({"trt_flavour": "tensorrt_rtx", "trt_version": "1.7.1.116"}, "built with tensorrt_rtx"),
        ({"compute_capability": "9.0", "gpu_name": "H100"}, "compute capability 9.0 .*this GPU is 8.7"),
        ({"plan_sha256": "f" * 64}, "does not match its sidecar"),
    ],
)
def test_trt_refuses_mismatched_plan_before_loading(
    tmp_path: Path, fake_trt_box: types.SimpleNamespace, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(FrptError, match=message):
        create_backend(engine=toy_plan(tmp_path, **changes)).activate()
    assert not _FakeRuntime.reached


def test_trt_refuses_missing_plugin(
    tmp_path: Path, fake_trt_box: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRPT_PLUGIN_LIB", str(tmp_path / "libfrpt_plugins.so"))
    with pytest.raises(FrptError, match="libfrpt_plugins"):
        plan = toy_plan(tmp_path, onnx_metadata=toy_metadata(lowering="plugin"), plugin_required=True)
        create_backend(engine=plan).activate()
    assert not _FakeRuntime.reached


def test_trt_compatible_plan_reaches_deserialisation(tmp_path: Path, fake_trt_box: types.SimpleNamespace) -> None:
    with pytest.raises(FrptError, match="could not deserialise"):
        create_backend(engine=toy_plan(tmp_path)).activate()
    assert _FakeRuntime.reached


def test_trt_without_tensorrt_or_gpu_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = toy_plan(tmp_path)
    for name in ("tensorrt", "tensorrt_rtx"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(FrptError, match="TensorRT is not installed"):
        create_backend(engine=plan).activate()
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    try:
        from frpt_runtime import cuda_memory

        cuda_memory.set_device(0)
        pytest.skip("a CUDA device is present: the no-GPU error cannot be shown")
    except FrptError:
        pass
    with pytest.raises(FrptError, match="CUDA"):
        create_backend(engine=plan).activate()


def test_trt_batch_over_profile_refused(tmp_path: Path) -> None:
    """check_batch uses the sidecar's profile (max 16) — exercised through ModelInfo directly."""
    from frpt_runtime.backends.base import ModelInfo
    from frpt_runtime.backends.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(tmp_path / "m.plan")
    backend._info = ModelInfo(  # what _activate returns for that sidecar
        path=backend.path,
        sha256="0",
        backend="tensorrt",
        metadata=ExportMetadata.from_props(toy_metadata(precision="fp16"), "m.plan"),
        embedding_dim=TOY_DIM,
        min_batch=1,
        max_batch=16,
    )
    backend.check_batch(16)
    with pytest.raises(FrptError, match="batch 17 exceeds the maximum 16 of m.plan: pass --batch-size 16"):
        backend.check_batch(17)
    with pytest.raises(FrptError, match="exceeds the maximum 16"):
        backend.submit(np.zeros((17, TOY_SIZE, TOY_SIZE, 3), np.uint8))


def test_trt_backend_on_a_real_tensorrt_rtx_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan + sidecar really built by TensorRT-RTX on this CPU box: read, checked, refused with one line."""
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX builder not installed")
    trt_build = pytest.importorskip("frpt_export.trt_build")
    from frpt_runtime import cuda_memory

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # the runtime picks tensorrt_rtx, as the builder did
    make_toy_onnx(tmp_path / "toy.onnx")
    trt_build.build_engine(tmp_path / "toy.onnx", tmp_path / "toy.plan", trt_build.BatchProfile(1, 2, 4))
    plan = tmp_path / "toy.plan"
    try:
        cuda_memory.set_device(0)
        pytest.skip("a CUDA GPU is present: covered by the tensorrt-marked execution test")
    except FrptError:
        pass
    with pytest.raises(FrptError, match="CUDA cudaGetDeviceCount failed"):
        create_backend(engine=plan).activate()
    # A wrong plan is named as such before CUDA is touched, even on this box without a usable GPU.
    sidecar_file = tmp_path / "toy.plan.json"
    sidecar = json.loads(sidecar_file.read_text())
    sidecar_file.write_text(json.dumps({**sidecar, "trt_version": "0.9"}))
    with pytest.raises(FrptError, match=r"built with tensorrt_rtx 0.9, this is tensorrt_rtx .*: rebuild it"):
        create_backend(engine=plan).activate()
    sidecar_file.write_text(json.dumps({**sidecar, "plan_sha256": "0" * 64}))
    with pytest.raises(FrptError, match="does not match its sidecar's plan_sha256"):
        create_backend(engine=plan).activate()
    sidecar_file.write_text(json.dumps(sidecar))
    monkeypatch.setattr(cuda_memory, "set_device", lambda device: None)
    monkeypatch.setattr(cuda_memory, "compute_capability", lambda device: "8.6")
    with pytest.raises(FrptError, match="could not deserialise"):  # every check passed; no GPU to load onto
        create_backend(engine=plan).activate()


@pytest.mark.tensorrt
def test_trt_engine_executes_with_parity(tmp_path: Path) -> None:
    """Build the toy graph with full TensorRT on this GPU, then run it through the backend (double-buffered)."""
    trt = pytest.importorskip("tensorrt", reason="full TensorRT is not installed (TensorRT-RTX cannot execute here)")
    from frpt_runtime import cuda_memory

    try:
        cuda_memory.set_device(0)
    except FrptError as exc:
        pytest.skip(f"no usable CUDA GPU: {exc}")
    onnx_path, plan = tmp_path / "toy.onnx", tmp_path / "toy.plan"
    weights = make_toy_onnx(onnx_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes()), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    shape = (TOY_SIZE, TOY_SIZE, 3)
    profile.set_shape("images", (1, *shape), (4, *shape), (8, *shape))
    config.add_optimization_profile(profile)
    plan.write_bytes(bytes(builder.build_serialized_network(network, config)))
    write_sidecar(
        plan,
        toy_sidecar(
            plan,
            trt_version=trt.__version__,
            max_batch=8,
            opt_batch=4,
            onnx_metadata=toy_metadata(),
            compute_capability=cuda_memory.compute_capability(0),
            gpu_name=cuda_memory.device_name(0),
        ),
    )
    images = np.random.default_rng(3).integers(0, 256, (13, *shape), dtype=np.uint8)
    with create_backend(engine=plan) as backend:
        pending = [backend.submit(images[:8]), backend.submit(images[8:])]
        out = np.concatenate([item.result() for item in pending])
    np.testing.assert_allclose(out, toy_reference(images, weights), atol=1e-4)
