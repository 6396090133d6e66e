"""``frpt-export triton``: the repository's ``config.pbtxt`` parses into Triton's own ``ModelConfig`` (tritonclient's
``model_config_pb2``) and matches the model: the ONNX graph's I/O, or a TensorRT-RTX plan's sidecar profile and the
graph it was built from; refusals are one line and write nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto
from runtime_toys import TOY_DIM, TOY_SIZE, make_toy_onnx, toy_bundle, toy_metadata, toy_plan
from typer.testing import CliRunner

from frpt_export.cli import app
from frpt_export.triton_repo import OrtAccelerator, TritonJob, write_triton_repository
from frpt_runtime.contract import INPUT_NAME, OUTPUT_NAME, Lowering, Precision
from frpt_runtime.engine_sidecar import read_sidecar, sha256_file
from frpt_runtime.errors import FrptError

model_config_pb2 = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] not installed (the triton extra pins it)"
)
from google.protobuf import text_format  # noqa: E402 - tritonclient brings the protobuf it was generated for

TRITON_TYPE = {TensorProto.UINT8: "TYPE_UINT8", TensorProto.FLOAT: "TYPE_FP32"}


def parse_config(model_dir: Path):
    """``config.pbtxt`` parsed by protobuf's text format into Triton's ``inference.ModelConfig``."""
    return text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def graph_io(path: Path) -> list[tuple[str, str, list[int]]]:
    """``(name, Triton data type, dims without the batch axis)`` of every graph input and output."""
    graph = onnx.load(str(path)).graph
    return [
        (v.name, TRITON_TYPE[v.type.tensor_type.elem_type], [d.dim_value for d in v.type.tensor_type.shape.dim[1:]])
        for v in [*graph.input, *graph.output]
    ]


def config_io(config) -> list[tuple[str, str, list[int]]]:
    tensors = [*config.input, *config.output]
    return [(t.name, model_config_pb2.DataType.Name(t.data_type), list(t.dims)) for t in tensors]


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    model = tmp_path / "toy.fp16.onnx"
    toy_bundle(model.with_name("toy.fp16.ref.npz"), make_toy_onnx(model), model)
    return model


def test_onnx_repository_parses_and_matches_the_graph(toy: Path, tmp_path: Path) -> None:
    job = TritonJob(toy, tmp_path / "repo", max_batch=48, preferred_batch=(16, 32), instances=2, device="cuda:1")
    report = write_triton_repository(job)
    model_dir = tmp_path / "repo" / "toy_fp16"
    config = parse_config(model_dir)
    assert (config.name, config.platform, config.max_batch_size) == ("toy_fp16", "onnxruntime_onnx", 48)
    assert (
        config_io(config)
        == graph_io(toy)
        == [
            (INPUT_NAME, "TYPE_UINT8", [TOY_SIZE, TOY_SIZE, 3]),
            (OUTPUT_NAME, "TYPE_FP32", [TOY_DIM]),
        ]
    )
    assert list(config.dynamic_batching.preferred_batch_size) == [16, 32]
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    (group,) = config.instance_group
    assert (group.count, group.kind, list(group.gpus)) == (2, model_config_pb2.ModelInstanceGroup.KIND_GPU, [1])
    assert not config.HasField("optimization")
    assert sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*")) == [
        "1",
        "1/model.onnx",
        "1/model.ref.npz",
        "README.md",
        "config.pbtxt",
    ]
    assert sha256_file(model_dir / "1" / "model.onnx") == sha256_file(toy)
    readme = (model_dir / "README.md").read_text()
    assert report.serve_command in readme and "tritonserver --model-repository=/models" in report.serve_command
    assert 'client.infer("toy_fp16"' in readme and "TYPE_UINT8" in readme


@pytest.mark.parametrize(
    ("device", "accelerator", "kind", "precision"),
    [
        ("cpu", OrtAccelerator.none, "KIND_CPU", None),
        ("auto", OrtAccelerator.none, "KIND_AUTO", None),
        ("auto", OrtAccelerator.tensorrt, "KIND_GPU", "FP32"),
        ("cuda", OrtAccelerator.tensorrt_fp16, "KIND_GPU", "FP16"),
    ],
)
def test_instance_kind_and_ort_tensorrt_accelerator(toy, tmp_path, device, accelerator, kind, precision) -> None:
    write_triton_repository(TritonJob(toy, tmp_path / "repo", device=device, ort_accelerator=accelerator))
    config = parse_config(tmp_path / "repo" / "toy_fp16")
    assert model_config_pb2.ModelInstanceGroup.Kind.Name(config.instance_group[0].kind) == kind
    assert config.max_batch_size == 64 and list(config.dynamic_batching.preferred_batch_size) == [64]
    accelerators = config.optimization.execution_accelerators.gpu_execution_accelerator
    if precision is None:
        assert list(accelerators) == []
        return
    (trt,) = accelerators
    assert trt.name == "tensorrt" and trt.parameters["precision_mode"] == precision
    shape = f"{TOY_SIZE}x{TOY_SIZE}x3"
    assert trt.parameters["trt_profile_min_shapes"] == f"{INPUT_NAME}:1x{shape}"
    assert trt.parameters["trt_profile_max_shapes"] == f"{INPUT_NAME}:64x{shape}"


def test_plan_repository_takes_the_profile_and_the_bundle_width(tmp_path: Path) -> None:
    plan = toy_plan(tmp_path, min_batch=1, opt_batch=8, max_batch=16)
    toy_bundle(tmp_path / "model.ref.npz", make_toy_onnx(tmp_path / "model.onnx"), tmp_path / "model.onnx")
    report = write_triton_repository(TritonJob(plan, tmp_path / "repo"))
    model_dir = tmp_path / "repo" / "model"
    config = parse_config(model_dir)
    assert (config.platform, config.max_batch_size) == ("tensorrt_plan", 16)
    assert config_io(config) == graph_io(tmp_path / "model.onnx")
    assert list(config.dynamic_batching.preferred_batch_size) == [8, 16]
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert read_sidecar(model_dir / "1" / "model.plan") == read_sidecar(plan)
    assert any("TensorRT that built it (10.3.0)" in note for note in report.notes)
    smaller = write_triton_repository(TritonJob(plan, tmp_path / "repo", name="small", max_batch=4))
    assert smaller.max_batch_size == 4 and smaller.preferred_batch_size == [4]


def test_tensorrt_rtx_plan_of_a_real_export(tmp_path: Path) -> None:
    """A real FRPT export built by TensorRT-RTX: the config matches the graph it was built from and the profile."""
    torch = pytest.importorskip("torch")
    from frpt.model import create_model
    from frpt_export.graph import LowerOptions
    from frpt_export.onnx_export import export_onnx
    from frpt_export.trt_build import BUILDER_HINT, BatchProfile, build_engine
    from frpt_runtime.families.frpt import FRPTConfig
    from frpt_runtime.trt_module import import_tensorrt

    try:
        _, flavour = import_tensorrt(BUILDER_HINT)
    except FrptError as exc:
        pytest.skip(f"no TensorRT builder importable: {exc}")
    torch.manual_seed(0)
    model = create_model(FRPTConfig(input_size=64, num_classes=3, embedding_dim=12), random_init=True).eval()
    graph = export_onnx(model, tmp_path / "model.fp16.onnx", LowerOptions(Lowering.standard, Precision.fp16)).onnx_path
    plan = tmp_path / "model.fp16.plan"
    build_engine(graph, plan, BatchProfile(1, 4, 8))
    report = write_triton_repository(TritonJob(plan, tmp_path / "repo", name="frpt", preferred_batch=(4,)))
    config = parse_config(tmp_path / "repo" / "frpt")
    assert (
        config_io(config)
        == graph_io(Path(graph))
        == [
            (INPUT_NAME, "TYPE_UINT8", [64, 64, 3]),
            (OUTPUT_NAME, "TYPE_FP32", [12]),
        ]
    )
    assert (config.platform, config.max_batch_size, list(config.dynamic_batching.preferred_batch_size)) == (
        "tensorrt_plan",
        8,
        [4],
    )
    side = read_sidecar(tmp_path / "repo" / "frpt" / "1" / "model.plan")
    assert side.plan_sha256 == sha256_file(tmp_path / "repo" / "frpt" / "1" / "model.plan")
    if flavour == "tensorrt_rtx":
        assert any("TensorRT-RTX" in note and "full TensorRT plans only" in note for note in report.notes)


def _refused(job: TritonJob, match: str) -> None:
    with pytest.raises(FrptError, match=match) as err:
        write_triton_repository(job)
    assert "\n" not in str(err.value)
    assert not job.out.exists() or not any(job.out.iterdir())


def test_refusals_are_one_line_and_write_nothing(toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    plugin = tmp_path / "p.onnx"
    make_toy_onnx(plugin, metadata=toy_metadata(lowering="plugin"), plugin_node=True)
    _refused(TritonJob(plugin, out), "plugin-lowered: Triton's ONNX Runtime has no kernel")
    plans = tmp_path / "plans"
    for sub, changes, match in [
        ("a", {"plugin_required": True}, "plain dlopen .* registers only through TensorRT's plugin registry"),
        ("b", {"min_batch": 2}, "profile starts at batch 2: .*--min-batch 1"),
    ]:
        (plans / sub).mkdir(parents=True)
        _refused(TritonJob(toy_plan(plans / sub, **changes), out), match)
    (plans / "c").mkdir()
    plan = toy_plan(plans / "c")
    _refused(TritonJob(plan, out), "embedding width is read from its reference bundle")
    toy_bundle(plans / "c" / "model.ref.npz", make_toy_onnx(plans / "c" / "model.onnx"), plans / "c" / "model.onnx")
    _refused(TritonJob(plan, out, max_batch=17), "above the plan's profile \\(16\\)")
    _refused(TritonJob(plan, out, device="cpu"), "--device cpu cannot run a TensorRT plan")
    _refused(TritonJob(plan, out, ort_accelerator=OrtAccelerator.tensorrt), "--ort-accelerator is for ONNX")
    _refused(TritonJob(toy, out, device="cpu", ort_accelerator=OrtAccelerator.tensorrt), "needs a GPU")
    _refused(TritonJob(toy, out, preferred_batch=(128,)), r"--preferred-batch \[128\] must lie in 1..64")
    _refused(TritonJob(toy, out, name="a/b"), "--name 'a/b'")
    wrong = tmp_path / "wrong.onnx"
    make_toy_onnx(wrong)
    proto = onnx.load(str(wrong))
    proto.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT
    onnx.save(proto, str(wrong))
    _refused(TritonJob(wrong, out), "not the contract's images uint8")
    write_triton_repository(TritonJob(toy, out))
    with pytest.raises(FrptError, match="already exists: remove it, or choose another --name"):
        write_triton_repository(TritonJob(toy, out))


def test_cli_json_convention_and_one_line_error(toy: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "repo"
    done = runner.invoke(app, ["triton", str(toy), "-o", str(out), "--preferred-batch", "8", "--json"])
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    assert document["command"] == "frpt-export triton" and sorted(document) == ["command", "result"]
    assert document["result"]["preferred_batch_size"] == [8] and Path(document["result"]["config_path"]).is_file()
    again = runner.invoke(app, ["triton", str(toy), "-o", str(out)])
    assert again.exit_code == 2 and again.stderr.count("\n") == 1 and "already exists" in again.stderr
    assert os.listdir(out) == ["toy_fp16"]
