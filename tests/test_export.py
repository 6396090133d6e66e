"""`export_onnx`: both lowerings, fp32 and fp16 graphs, bundle, metadata, Polygraphy files, bad checkpoints.

One small model (pretrained EfficientNet-Lite0 at 64 px, a seeded non-zero saliency conv so DPP really
warps) is exported once per variant for the whole module; everything runs on ONNX Runtime CPU.
"""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from frpt.checkpoint import save_checkpoint
from frpt.model import create_model
from frpt_export.families import lower_model
from frpt_export.graph import LowerOptions
from frpt_export.lowering import HalfBackbone
from frpt_export.onnx_export import ExportReport, _trace, export_onnx
from frpt_export.onnx_meta import read_graph_facts
from frpt_export.reference import reference_images, split_batches
from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from frpt_runtime.bundle import load_bundle
from frpt_runtime.contract import Lowering, MetaKey, Precision
from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import FRPTConfig
from frpt_runtime.parity import FP16_MIN_COSINE, FP16_MIN_TOP1, FP32_MAX_ABS, compare_embeddings

SIZE = 64
VARIANTS = [("standard", "fp32"), ("plugin", "fp32"), ("standard", "fp16"), ("plugin", "fp16")]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = create_model(FRPTConfig(input_size=SIZE, num_classes=5, class_names=tuple("abcde")))
    torch.nn.init.normal_(m.parser.conv.weight, std=0.02)  # logits spread ~3: a visibly warped, trained-like map
    return m.eval()


@pytest.fixture(scope="module")
def exports(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return {
        (lo, pr): export_onnx(model, root / f"{lo}_{pr}.onnx", LowerOptions(Lowering(lo), Precision(pr)))
        for lo, pr in VARIANTS
    }


def _ort_on_bundle(report: ExportReport):
    bundle = load_bundle(report.bundle_path)
    with OnnxRuntimeBackend(report.onnx_path) as backend:
        outs = [backend.infer(imgs) for imgs, _ in bundle.batches()]
    return bundle, outs


@pytest.mark.parametrize("lowering", ["standard", "plugin"])
def test_fp32_matches_pytorch_on_bundle_batches_1_3_8(exports, lowering):
    report = exports[(lowering, "fp32")]
    assert report and report.parity["max_abs"] <= FP32_MAX_ABS
    bundle, outs = _ort_on_bundle(report)
    assert bundle.batch_sizes.tolist() == [1, 3, 8]
    assert [o.shape[0] for o in outs] == [1, 3, 8] and all(o.dtype == np.float32 for o in outs)
    parity = compare_embeddings(bundle.embeddings, np.concatenate(outs), "fp32")
    assert parity and parity.max_abs <= FP32_MAX_ABS
    assert np.linalg.norm(np.concatenate(outs), axis=1) == pytest.approx(1.0, abs=1e-5)


def test_bundle_images_are_really_warped_so_parity_covers_the_sampler(model, exports):
    """On the bundle's images the saliency varies per image and the DPP warp moves pixels far from the identity:
    an export that skipped the warp would miss the fp32 bound by orders of magnitude."""
    bundle = load_bundle(exports[("standard", "fp32")].bundle_path)
    with torch.no_grad():
        x = model.prepare(torch.from_numpy(bundle.images))
        saliency, warped = model.perturb(x)
        unwarped = torch.nn.functional.normalize(model.head(model.cah(model.backbone.forward_features(x))), dim=1)
    uniform = 1.0 / saliency[0].numel()
    assert saliency.amax(dim=(1, 2, 3)).min() > 1.5 * uniform  # peaked (1.7x to 8x measured), not the uniform map
    assert (saliency - saliency.mean(dim=0)).abs().amax() > 2 * uniform  # and not one map for every image (6x)
    assert (warped - x).abs().mean(dim=(1, 2, 3)).min() > 0.03  # every image moved (0.06 to 0.33; x ~unit variance)
    skipped = compare_embeddings(bundle.embeddings, unwarped.numpy(), "fp32")
    assert not skipped and skipped.max_abs > 100 * FP32_MAX_ABS


@pytest.mark.parametrize("lowering", ["standard", "plugin"])
def test_fp16_graph_meets_cosine_and_top1(exports, lowering):
    report = exports[(lowering, "fp16")]
    bundle, outs = _ort_on_bundle(report)  # ORT CPU runs the mixed graph itself (kernels present)
    parity = compare_embeddings(bundle.embeddings, np.concatenate(outs), "fp16")
    assert parity.min_cosine >= FP16_MIN_COSINE and parity.top1_agreement >= FP16_MIN_TOP1
    assert parity.max_abs > 0  # it really computed in half
    assert report and report.parity["min_cosine"] == pytest.approx(parity.min_cosine)


def _elem_types(path) -> dict[str, int]:
    model = onnx.shape_inference.infer_shapes(onnx.load(path))
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    types.update({i.name: i.data_type for i in graph.initializer})
    return types, graph


def test_fp16_graph_precision_placement(exports):
    f16, f32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    types, graph = _elem_types(exports[("standard", "fp16")].onnx_path)
    by_op = {}
    for node in graph.node:
        by_op.setdefault(node.op_type, []).append(node)
    conv_types = [types[n.input[1]] for n in by_op["Conv"]]
    # the full backbone pass in half; the saliency pass (backbone to the tap + parser) float32 by default
    assert conv_types.count(f16) > conv_types.count(f32) > 0
    for op in ("InstanceNormalization", "GridSample", "Softmax", "ReduceMean", "ReduceL2"):
        assert op in by_op and {types[n.input[0]] for n in by_op[op]} == {f32}, op
    assert types["images"] == onnx.TensorProto.UINT8 and types["embedding"] == f32
    fp32_types, fp32_graph = _elem_types(exports[("standard", "fp32")].onnx_path)
    assert f16 not in {fp32_types[n.input[1]] for n in fp32_graph.node if n.op_type == "Conv"}


COMPUTE_OPS = {"Conv", "Clip", "Add", "Sub", "Mul", "Div", "MatMul", "Gemm", "GridSample", "InstanceNormalization"}
COMPUTE_OPS |= {"Softmax", "ReduceMean", "ReduceL2", "Sigmoid", "Relu", "InhomogeneousSample"}


def _dtype_signature(proto) -> dict[str, list[tuple[int, ...]]]:
    """Per compute op type: the set of input dtypes of each such node (the optimiser may drop a zero Conv bias)."""
    inferred = onnx.shape_inference.infer_shapes(proto)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    types.update({i.name: i.data_type for i in graph.initializer})
    types.update({n.output[0]: n.attribute[0].t.data_type for n in graph.node if n.op_type == "Constant"})
    signature: dict[str, list[tuple[int, ...]]] = {}
    for node in graph.node:
        if node.op_type in COMPUTE_OPS:
            signature.setdefault(node.op_type, []).append(
                tuple(sorted({types.get(name, 0) for name in node.input if name}))
            )
    return {op: sorted(items) for op, items in signature.items()}


@pytest.mark.parametrize("lowering", ["standard", "plugin"])
def test_optimiser_keeps_every_ops_precision(model, exports, lowering):
    """No fp16 -> fp32 drift (or back): each compute op keeps the input dtypes it had in the raw trace."""
    raw = _trace(lower_model(model, LowerOptions(Lowering(lowering), Precision.fp16)), SIZE, 17, Lowering(lowering))
    optimised = onnx.load(exports[(lowering, "fp16")].onnx_path)
    assert _dtype_signature(optimised) == _dtype_signature(raw)
    f16 = onnx.TensorProto.FLOAT16
    assert sum(types == (f16,) for types in _dtype_signature(optimised)["Conv"]) > 40  # the full pass, in half


def test_graph_is_lean_by_construction_and_names_stay_readable(exports):
    """No shape arithmetic, padding subgraphs, Constant or Identity nodes; every node named after its module."""
    for (lowering, precision), report in exports.items():
        graph = onnx.load(report.onnx_path).graph
        ops = [n.op_type for n in graph.node]
        assert not {"Pad", "Ceil", "Constant", "Identity", "ConstantOfShape", "Slice"} & set(ops), (lowering, precision)
        assert ops.count("Shape") <= 1 and ops.count("Cast") == (1 if precision == "fp32" else 3)
        names = [n.name for n in graph.node]
        assert all(name.startswith("/") for name in names) and len(set(names)) == len(names)
        assert any(n.name == "/stages.1/stages.1.0/conv_dw/Conv" for n in graph.node if n.op_type == "Conv")


def test_node_count_within_ten_percent_of_onnxslim(exports):
    """Acceptance of the lean graph: a general simplifier finds (almost) nothing left to remove."""
    onnxslim = pytest.importorskip("onnxslim")
    for key, report in exports.items():
        proto = onnx.load(report.onnx_path)
        slim = onnxslim.slim(onnx.load(report.onnx_path))
        assert len(proto.graph.node) <= 1.1 * len(slim.graph.node), key
        assert report.num_nodes == len(proto.graph.node)


def test_all_half_saliency_option(model):
    default = lower_model(model, LowerOptions(Lowering.standard, Precision.fp16)).model
    assert isinstance(default.backbone, HalfBackbone) and default.backbone.tap_dtype == torch.float32
    assert default.parser.conv.weight.dtype == torch.float32
    half = lower_model(model, LowerOptions(Lowering.standard, Precision.fp16, Precision.fp16)).model
    assert half.parser.conv.weight.dtype == torch.float16 and half.backbone.tap_backbone is half.backbone.half_backbone
    images = torch.from_numpy(load_bundle_images())
    with torch.no_grad():
        ref = model.embed_uint8(images).numpy()
        assert (
            compare_embeddings(
                ref, lower_model(model, LowerOptions(precision=Precision.fp16))(images).numpy(), "fp16"
            ).min_cosine
            >= FP16_MIN_COSINE
        )
        assert (
            compare_embeddings(
                ref,
                lower_model(model, LowerOptions(Lowering.standard, Precision.fp16, Precision.fp16))(images).numpy(),
                "fp16",
            ).max_abs
            > 0
        )
    fp32 = lower_model(model, LowerOptions(Lowering.standard, Precision.fp32, Precision.fp16)).model
    assert not isinstance(fp32.backbone, HalfBackbone)  # saliency precision means nothing in an fp32 graph
    assert next(model.backbone.parameters()).dtype == torch.float32  # lowering works on a copy


def load_bundle_images():
    return reference_images(SIZE, 0.875, limit=4)


def test_graph_io_cast_first_and_metadata(exports, model):
    for (lowering, precision), report in exports.items():
        proto = onnx.load(report.onnx_path)
        (inp,), (out,) = proto.graph.input, proto.graph.output
        dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
        assert inp.name == "images" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
        assert dims == ["batch", SIZE, SIZE, 3]
        assert out.name == "embedding" and [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == [
            "batch",
            1280,
        ]
        consumers = [n.op_type for n in proto.graph.node if "images" in n.input]
        assert consumers == ["Cast"]
        facts = read_graph_facts(report.onnx_path)
        meta = facts.props
        assert {k.value for k in MetaKey} == set(meta) and meta["frpt.saliency_precision"] == "fp32"
        assert meta["frpt.family"] == "frpt" and facts.metadata.config == model.config
        assert (meta["frpt.lowering"], meta["frpt.precision"], meta["frpt.opset"]) == (lowering, precision, "17")
        custom = {n.op_type for n in proto.graph.node if n.domain == "frpt"}
        assert custom == ({"InhomogeneousSample"} if lowering == "plugin" else set())
        assert facts.plugin_required == (lowering == "plugin")
        onnx.checker.check_model(proto)
        assert ExportReport.from_dict(json.loads(report.to_json())) == report


def test_bundles_are_bound_to_their_export(exports):
    """Each bundle names its exported file (sha256), precision and lowering: the bundles of one model's exports
    were byte-identical and named nothing (issue 9)."""
    from frpt_runtime.onnx_files import model_sha256

    for (lowering, precision), report in exports.items():
        bundle = load_bundle(report.bundle_path)
        assert bundle.model_sha256 == model_sha256(report.onnx_path)
        assert (bundle.precision, bundle.lowering) == (precision, lowering)
    assert len({Path(report.bundle_path).read_bytes() for report in exports.values()}) == len(exports)


def test_polygraphy_files_load_back(exports):
    from polygraphy.comparator import RunResults
    from polygraphy.json import load_json

    report = exports[("standard", "fp32")]
    bundle = load_bundle(report.bundle_path)
    feeds = load_json(report.inputs_json)
    results = RunResults.load(report.outputs_json)
    ((_runner, iterations),) = results.items()
    assert len(feeds) == len(iterations) == 3
    for feed, iteration, (imgs, embs) in zip(feeds, iterations, bundle.batches(), strict=True):
        np.testing.assert_array_equal(feed["images"], imgs)
        np.testing.assert_array_equal(iteration["embedding"], embs)


def _bad_checkpoints(model, root):
    good = save_checkpoint(model, root / "good.ckpt")
    truncated = root / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    pickled = root / "pickled.ckpt"
    torch.save({"format": "frpt-checkpoint", "model": torch.nn.Linear(2, 2)}, pickled)
    other = create_model(FRPTConfig(input_size=SIZE, num_classes=7), random_init=True)
    payload = torch.load(save_checkpoint(other, root / "other.ckpt"), weights_only=True)
    payload["config"] = model.config.to_json()  # 5 classes claimed, 7-class weights inside
    foreign = root / "foreign.ckpt"
    torch.save(payload, foreign)
    return [root / "missing.ckpt", truncated, pickled, foreign]


def test_bad_checkpoints_fail_in_one_line_and_write_nothing(model, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for ckpt in _bad_checkpoints(model, tmp_path):
        with pytest.raises(FrptError) as info:
            export_onnx(ckpt, out_dir / "model.onnx")
        assert "\n" not in str(info.value) and str(ckpt.name) in str(info.value)
        assert list(out_dir.iterdir()) == []


def test_bad_options_rejected(model, tmp_path):
    for opset in (15, 20):
        with pytest.raises(FrptError, match="opset"):
            export_onnx(model, tmp_path / "m.onnx", opset=opset)
    assert not (tmp_path / "m.onnx").exists()


def test_bad_output_path_rejected_before_work(model, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for out, match in ((tmp_path, "is a folder"), (afile / "m.onnx", "which is a file")):
        with pytest.raises(FrptError, match=match):
            export_onnx(model, out)
    assert afile.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    ckpt = save_checkpoint(model, tmp_path / "m.pt")
    data = ckpt.read_bytes()
    with pytest.raises(FrptError, match="would overwrite the checkpoint"):
        export_onnx(ckpt, tmp_path / "." / "m.pt")
    assert ckpt.read_bytes() == data


def test_old_32px_model_is_a_one_line_export_error(tmp_path):
    """A model from before MIN_INPUT_SIZE (32 px: 1x1 final map) still loads, but its export says why it cannot."""
    small = create_model(FRPTConfig(input_size=32, num_classes=2), random_init=True).eval()
    with pytest.raises(FrptError, match="1x1 feature map.*--input-size >= 64"):
        export_onnx(small, tmp_path / "small.onnx")
    assert list(tmp_path.iterdir()) == []


def test_reference_images_from_folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    Image.fromarray(rng.integers(0, 255, (30, 30), dtype=np.uint8)).save(tmp_path / "sub_gray.png")
    images = reference_images(SIZE, 0.875, tmp_path)
    assert images.shape == (5, SIZE, SIZE, 3) and images.dtype == np.uint8
    assert split_batches(5).tolist() == [1, 3, 1] and split_batches(12).tolist() == [1, 3, 8]
    assert split_batches(14).tolist() == [1, 3, 8, 1, 1]
    with pytest.raises(FrptError, match="no decodable image"):
        (tmp_path / "empty").mkdir()
        reference_images(SIZE, 0.875, tmp_path / "empty")


def test_polygraphy_cli_compares_onnxruntime_against_saved_outputs(exports):
    """Polygraphy's own `run --load-inputs --load-outputs` accepts the files (as with `model.plan --trt`)."""
    import subprocess
    import sys
    from pathlib import Path

    report = exports[("standard", "fp32")]
    polygraphy = Path(sys.executable).parent / "polygraphy"
    if not polygraphy.exists():
        pytest.skip("polygraphy command-line tool not installed beside this Python")
    result = subprocess.run(
        [
            str(polygraphy),
            "run",
            report.onnx_path,
            "--onnxrt",
            "--load-inputs",
            report.inputs_json,
            "--load-outputs",
            report.outputs_json,
            "--atol",
            "1e-4",
            "--rtol",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Passed: 3/3 iterations" in result.stdout + result.stderr


def test_paper_variant_with_gem_neck_exports_at_fp32_parity(tmp_path):
    """The other DPP variant (stride-4 tap, 31x31 content-aware conv) and the GeM + BN-neck head."""
    torch.manual_seed(0)
    cfg = FRPTConfig(input_size=SIZE, num_classes=3, dpp_variant="paper", pooling="gem")
    model = create_model(cfg, random_init=True).eval()
    torch.nn.init.normal_(model.parser.conv.weight, std=0.01)
    model.head.neck.running_mean.normal_()
    model.head.neck.running_var.uniform_(0.5, 2.0)
    report = export_onnx(model, tmp_path / "paper.onnx")
    assert report and report.parity["max_abs"] <= FP32_MAX_ABS
    assert read_graph_facts(report.onnx_path).metadata.config == cfg
