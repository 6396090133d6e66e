"""Engine building: TensorRT-RTX (CPU-capable) parses and builds the standard-lowering graph, fp32 and fp16.

Runs wherever a TensorRT builder imports (``tensorrt`` preferred, else ``tensorrt_rtx`` from PyPI);
skips with the reason otherwise. The plugin graph's TensorRT build needs full TensorRT + the plugin
library (plugin issue); here only its clear refusal under TensorRT-RTX is checked.
"""

import importlib
import json

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from frpt.model import create_model
from frpt_export.graph import LowerOptions
from frpt_export.onnx_export import export_onnx
from frpt_export.trt_build import BUILDER_HINT, BatchProfile, BuildReport, build_engine
from frpt_runtime.bundle import load_bundle
from frpt_runtime.contract import Lowering, Precision, bundle_path_for
from frpt_runtime.engine_sidecar import read_sidecar, sha256_file
from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import FRPTConfig
from frpt_runtime.trt_module import TRT_MODULES, import_tensorrt

try:
    TRT, FLAVOUR = import_tensorrt(BUILDER_HINT)
except FrptError as exc:  # pragma: no cover - depends on the box
    pytest.skip(f"no TensorRT builder importable: {exc}", allow_module_level=True)

SIZE = 64


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    root = tmp_path_factory.mktemp("trt")
    torch.manual_seed(0)
    model = create_model(FRPTConfig(input_size=SIZE, num_classes=3), random_init=True).eval()
    torch.nn.init.normal_(model.parser.conv.weight, std=0.02)
    variants = [("standard", "fp32"), ("standard", "fp16"), ("plugin", "fp32")]
    return {
        v: export_onnx(model, root / f"{v[0]}_{v[1]}.onnx", LowerOptions(Lowering(v[0]), Precision(v[1]))).onnx_path
        for v in variants
    }


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_builds_standard_graph_and_sidecar(graphs, tmp_path, precision):
    onnx_path = graphs[("standard", precision)]
    plan = tmp_path / "model.plan"
    report = build_engine(onnx_path, plan, BatchProfile(1, 4, 8))
    assert report and report.plan_bytes == plan.stat().st_size > 100_000
    assert (report.trt_flavour, report.precision, report.lowering) == (FLAVOUR, precision, "standard")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.plan", "model.plan.json"]
    side = read_sidecar(plan)
    assert side.onnx_metadata == {p.key: p.value for p in onnx.load(onnx_path).metadata_props}
    assert (side.min_batch, side.opt_batch, side.max_batch) == (1, 4, 8)
    assert side.onnx_sha256 == sha256_file(onnx_path) and side.plan_sha256 == sha256_file(plan)
    bundle = bundle_path_for(onnx_path)  # plan -> ONNX sha256 -> the bundle made for it (issue 9)
    assert load_bundle(bundle).model_sha256 == side.onnx_sha256 and side.bundle_sha256 == sha256_file(bundle)
    assert (side.trt_flavour, side.trt_version, side.plugin_required) == (FLAVOUR, TRT.__version__, False)
    assert BuildReport.from_dict(json.loads(report.to_json())) == report


def test_plan_deserialises_where_a_gpu_runs_it(graphs, tmp_path):
    plan = tmp_path / "m.plan"
    build_engine(graphs[("standard", "fp16")], plan, BatchProfile(1, 2, 4))
    if read_sidecar(plan).gpu_name is None:
        pytest.skip("no CUDA GPU: the plan was built ahead of time and cannot be deserialised here")
    runtime = TRT.Runtime(TRT.Logger(TRT.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(plan.read_bytes())
    assert engine is not None and engine.get_tensor_dtype("images") == TRT.DataType.UINT8


def test_plugin_graph_under_rtx_is_refused_clearly(graphs, tmp_path):
    if FLAVOUR != "tensorrt_rtx":
        pytest.skip("full TensorRT builds the plugin graph (covered by the plugin tests)")
    with pytest.raises(FrptError, match="TensorRT-RTX has no plugin support.*--lowering standard"):
        build_engine(graphs[("plugin", "fp32")], tmp_path / "p.plan")
    assert list(tmp_path.iterdir()) == []


def test_parser_errors_fail_the_build_and_print_in_full(graphs, tmp_path, capsys):
    # a Transpose straight on the uint8 input: TensorRT's parser rejects it (why the graph casts first)
    source = onnx.load(graphs[("standard", "fp32")])
    graph = helper.make_graph(
        [
            helper.make_node("Transpose", ["images"], ["t"], perm=[0, 3, 1, 2], name="uint8_transpose"),
            helper.make_node("Cast", ["t"], ["c"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["c"], ["embedding"], axes=[2, 3], keepdims=0),
        ],
        "bad",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 3])],
    )
    bad = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    bad.metadata_props.extend(source.metadata_props)
    path = tmp_path / "bad.onnx"
    onnx.save(bad, path)
    with pytest.raises(FrptError, match="parser rejected .* error") as info:
        build_engine(path, tmp_path / "bad.plan", BatchProfile(1, 1, 2))
    assert "\n" not in str(info.value) and "uint8_transpose" in str(info.value)
    assert "[parser error 1/" in capsys.readouterr().err
    assert not (tmp_path / "bad.plan").exists()


def test_bad_requests(graphs, tmp_path, monkeypatch, capsys):
    with pytest.raises(FrptError, match="--min-batch <= --opt-batch"):
        BatchProfile(4, 2, 8)
    with pytest.raises(FrptError, match="not found"):
        build_engine(tmp_path / "none.onnx", tmp_path / "x.plan")
    real = importlib.import_module

    def no_trt(name, *a):
        if name in TRT_MODULES:
            raise ImportError(name)
        return real(name, *a)

    monkeypatch.setattr(importlib, "import_module", no_trt)
    with pytest.raises(FrptError, match=r"frpt-toolkit\[tensorrt-rtx\]"):
        build_engine(graphs[("standard", "fp32")], tmp_path / "x.plan")
    assert list(tmp_path.iterdir()) == []


def test_timing_cache(graphs, tmp_path, capsys):
    cache = tmp_path / "timing.cache"
    build_engine(graphs[("standard", "fp32")], tmp_path / "a.plan", BatchProfile(1, 1, 2), timing_cache=cache)
    if FLAVOUR == "tensorrt_rtx":
        assert "keeps no timing cache" in capsys.readouterr().err and not cache.exists()
        return
    first = cache.read_bytes()
    assert len(first) > 0
    build_engine(graphs[("standard", "fp32")], tmp_path / "b.plan", BatchProfile(1, 1, 2), timing_cache=cache)
    assert cache.stat().st_size >= len(first)
