"""VPT export: the image branch as ONNX (opset 17, legacy TorchScript exporter), fp32 and fp16 graphs, parity
in ONNX Runtime CPU on real photos under the shared thresholds, explicit precision, TensorRT-RTX builds both.

One export per precision, shared by the module (56 px: 4 x 4 patches of 14). The model is the offline
DINOv2 backbone (real activation ranges matter for fp16) with prompts, a random head and biases moved
off their pretrained values (standing in for BitFit training: the graph must carry the tuned ones).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto
from vpt_testkit import dinov2_path_or_skip

from frpt.errors import FrptError
from frpt.vpt.model import VPTModel, create_model
from frpt_export.onnx_export import _set_metadata, _set_output_shape, _trace
from frpt_export.reference import reference_images, session_embeddings, split_batches, torch_embeddings
from frpt_export.vpt_lowering import VPTEmbeddingGraph
from frpt_runtime.families.vpt import VPTConfig
from frpt_runtime.parity import compare_embeddings

SIZE = 56


def export_vpt(model: VPTModel, path, precision: str, softmax_precision: str = "fp32"):
    """Trace, pin the output shape, write the shared metadata plus ``frpt.family``; returns the proto."""
    proto = _trace(VPTEmbeddingGraph(model, precision, softmax_precision).eval(), SIZE, 17, "standard")
    _set_output_shape(proto, model.embedding_dim)
    _set_metadata(proto, model, "standard", precision, "fp32", 17)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "frpt.family", "vpt"
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
    return proto


@pytest.fixture(scope="module")
def model() -> VPTModel:
    dinov2_path_or_skip()
    torch.manual_seed(0)
    m = create_model(VPTConfig(input_size=SIZE, num_prompt=6, prompt_depth=12, prompt_block_step=0,
                               embed_dim=128, num_classes=4)).eval()
    with torch.no_grad():
        for name, p in m.vit.named_parameters():
            if name.endswith("bias"):
                p.add_(0.02 * torch.randn_like(p))
    return m


@pytest.fixture(scope="module")
def graphs(model, tmp_path_factory) -> dict[str, tuple[str, onnx.ModelProto]]:
    root = tmp_path_factory.mktemp("vpt_onnx")
    return {p: (str(root / f"vpt_{p}.onnx"), export_vpt(model, root / f"vpt_{p}.onnx", p)) for p in ("fp32", "fp16")}


@pytest.fixture(scope="module")
def photos(model):
    images = reference_images(SIZE, model.config.crop_pct)
    batches = split_batches(len(images))
    return images, batches, torch_embeddings(model, images, batches)


def _ort(path: str):
    import onnxruntime as ort

    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_ort_parity_on_photos(graphs, photos, precision: str) -> None:
    images, batches, reference = photos
    assert len(images) == 12 and list(batches) == [1, 3, 8]  # dynamic batch axis exercised
    candidate = session_embeddings(_ort(graphs[precision][0]), images, batches)
    report = compare_embeddings(reference, candidate, precision)
    assert report, report.to_dict()
    if precision == "fp32":
        assert report.max_abs <= 1e-4  # measured 4.5e-7
    else:
        assert report.min_cosine >= 0.999 and report.top1_agreement >= 0.99  # measured min cos 0.999998, top-1 100 %


def test_graph_contract(graphs, model) -> None:
    proto = graphs["fp32"][1]
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, inp.type.tensor_type.elem_type) == ("images", TensorProto.UINT8)
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["batch", SIZE, SIZE, 3]
    assert (out.name, out.type.tensor_type.elem_type) == ("embedding", TensorProto.FLOAT)
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 128]
    assert proto.graph.node[0].op_type == "Cast" and proto.graph.node[0].input[0] == "images"  # Cast first
    assert proto.opset_import[0].version == 17
    meta = {p.key: p.value for p in proto.metadata_props}
    assert VPTConfig.from_json(meta["frpt.config"]) == model.config and meta["frpt.family"] == "vpt"


def _constant(proto: onnx.ModelProto, array: np.ndarray) -> bool:
    target = np.asarray(array, dtype=np.float32)
    for init in proto.graph.initializer:
        value = onnx.numpy_helper.to_array(init)
        if value.size == target.size and np.allclose(value.astype(np.float32).ravel(), target.ravel(), atol=1e-3):
            return True
    return False


def test_prompts_and_tuned_biases_are_constants(graphs, model) -> None:
    proto = graphs["fp32"][1]
    assert _constant(proto, model.prompts.tokens[5].detach().numpy())
    assert _constant(proto, model.vit.blocks[7].mlp.fc1.bias.detach().numpy())  # the moved (tuned) bias
    assert not any(init.name.startswith("semantic") or "proxy" in init.name for init in proto.graph.initializer)


def _input_types(proto: onnx.ModelProto) -> dict[str, list[int]]:
    inferred = onnx.shape_inference.infer_shapes(proto)
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.input)}
    types |= {i.name: i.data_type for i in inferred.graph.initializer}
    by_op: dict[str, list[int]] = {}
    for node in inferred.graph.node:
        if node.input:
            by_op.setdefault(node.op_type, []).append(types.get(node.input[0]))
    return by_op


def test_fp16_graph_precision_is_explicit(graphs) -> None:
    half, single = TensorProto.FLOAT16, TensorProto.FLOAT
    ops = _input_types(graphs["fp16"][1])
    assert ops["MatMul"].count(half) == 12 * 6  # qkv, q@k, weights@v, proj, fc1, fc2 per block
    assert ops["Conv"] == [half]
    assert set(ops["LayerNormalization"]) == {single} and len(ops["LayerNormalization"]) == 12 * 2 + 2
    assert set(ops["Softmax"]) == {single}  # float32 unless softmax_precision="fp16"
    assert set(ops["Erf"]) == {half}  # GELU in half
    assert set(ops["ReduceL2"]) == {single} and set(ops["Gemm"]) == {single}  # L2 norm, image head
    assert set(_input_types(graphs["fp32"][1])["MatMul"]) == {single}


def test_fp16_softmax_option(model, photos, tmp_path) -> None:
    images, batches, reference = photos
    path = tmp_path / "sm16.onnx"
    proto = export_vpt(model, path, "fp16", softmax_precision="fp16")
    assert set(_input_types(proto)["Softmax"]) == {TensorProto.FLOAT16}
    report = compare_embeddings(reference, session_embeddings(_ort(str(path)), images, batches), "fp16")
    assert report, report.to_dict()  # measured min cos 0.999998 on ORT CPU, as with a float32 softmax


def test_bad_precision() -> None:
    with pytest.raises(FrptError, match="--precision must be one of"):
        VPTEmbeddingGraph(None, "int8")  # type: ignore[arg-type]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_rtx_builds_both_graphs(graphs, tmp_path, precision: str) -> None:
    from frpt_export.trt_build import BUILDER_HINT, build_engine
    from frpt_runtime.trt_module import import_tensorrt

    try:
        import_tensorrt(BUILDER_HINT)
    except FrptError as exc:
        pytest.skip(f"no TensorRT builder importable: {exc}")
    report = build_engine(graphs[precision][0], tmp_path / "vpt.plan", min_batch=1, opt_batch=2, max_batch=4)
    assert report and report.precision == precision and report.plan_bytes > 1_000_000
