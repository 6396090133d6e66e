"""ONNX lowerings of the DPP steps vs the pure reference (small sampler-only exports, ORT CPU)."""

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from skimage import data
from torch import nn

from frpt.sampling import coarse_grid, inhomogeneous_sample, upsample_grid
from frpt_export.lowering import (
    MatMulSaliencyMap,
    MatMulSampler,
    OnnxInstanceNorm,
    StaticPadConv2d,
    make_sampler,
    static_same_padding,
)
from frpt_runtime.contract import Lowering
from frpt_runtime.custom_ops import register_custom_ops


def create_session(path):
    """An ONNX Runtime CPU session that also runs the plugin node (the runtime's numpy custom op)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    register_custom_ops(options, path)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


G, PAD, FWHM, H, W = 31, 30, 13.0, 64, 48
PEAKS = [(2, 27), (28, 3), (15, 30), (0, 0)]  # strong, off-centre (and a corner)


def _saliency(dtype=torch.float64) -> torch.Tensor:
    """Near one-hot softmax maps (peak ~0.99 of the mass) at off-centre cells, plus one two-peak map."""
    logits = torch.zeros(len(PEAKS) + 1, G * G, dtype=dtype)
    for n, (i, j) in enumerate(PEAKS):
        logits[n, i * G + j] = 12.0
    logits[-1, 4 * G + 6] = logits[-1, 25 * G + 22] = 9.0
    return torch.softmax(logits, dim=1).view(-1, 1, G, G)


def _image(n: int) -> torch.Tensor:
    """A real photo (scikit-image's astronaut) in [0, 1], ``[n, 3, H, W]`` float64.

    A photo, not noise: float32 GridSample alone rounds pixel coordinates by ~1e-6 px, so the 1e-5 bound
    scales with the image's local gradient; white noise in [-1, 1] would measure GridSample, not the lowering.
    """
    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].double() / 255.0
    return F.interpolate(photo, size=(H, W), mode="area").expand(n, -1, -1, -1).contiguous()


class _Wrap(nn.Module):
    def __init__(self, sampler: nn.Module) -> None:
        super().__init__()
        self.sampler = sampler

    def forward(self, image, saliency):
        return self.sampler(image, saliency)


def _export(module: nn.Module, args: tuple, names: list[str], path, **kw) -> None:
    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=names,
        output_names=["out"],
        opset_version=17,
        dynamo=False,
        dynamic_axes={n: {0: "N"} for n in [*names, "out"]},
        **kw,
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("lowering")
    sal, img = _saliency(torch.float32)[:1], _image(1).float()
    paths = {}
    for lowering in ("standard", "plugin"):
        paths[lowering] = root / f"{lowering}.onnx"
        kw = {"custom_opsets": {"frpt": 1}} if lowering == "plugin" else {}
        _export(
            _Wrap(make_sampler(Lowering(lowering), G, PAD, FWHM, (H, W))).eval(),
            (img, sal),
            ["image", "saliency"],
            paths[lowering],
            **kw,
        )
    return paths


@pytest.mark.parametrize("lowering", ["standard", pytest.param("plugin", id="plugin-node-wiring-only")])
def test_onnx_sampler_matches_reference_on_strong_peaks(exported, lowering):
    """Standard graph in ORT vs the PyTorch reference: its math. The plugin node runs through ORT's numpy custom
    op, which evaluates the runtime's own matrix form, so that case proves the node's wiring (inputs, attributes,
    output shape) only; the plugin's CUDA math is checked by the kernel tests."""
    sal = _saliency()
    img = _image(sal.shape[0])
    exact = inhomogeneous_sample(img, sal, (H, W), PAD, FWHM).numpy()
    ref32 = inhomogeneous_sample(img.float(), sal.float(), (H, W), PAD, FWHM).numpy()
    out = create_session(exported[lowering]).run(None, {"image": img.float().numpy(), "saliency": sal.float().numpy()})[
        0
    ]
    assert out.shape == (sal.shape[0], 3, H, W) and out.dtype == np.float32
    if lowering == "standard":
        # against the reference evaluated in float64 (the float32 reference is itself ~2e-5 off it here,
        # the MatMul form with D = 2Mc - M being the more accurate float32 evaluation)
        assert np.abs(out - exact).max() <= 1e-5
    else:  # the node runs the runtime's numpy matrix form of the op (the standard lowering's math, in numpy)
        assert np.abs(out - exact).max() <= 1e-5
        assert np.abs(out - ref32).max() <= 3e-5
    # the peaks really deform the image: far from the identity resampling
    identity = F.grid_sample(
        img, upsample_grid(coarse_grid(torch.full_like(sal, 1 / G**2), PAD, FWHM), (H, W)), align_corners=True
    ).numpy()
    assert np.abs(out - identity).max() > 0.5


def test_matmul_grid_matches_reference_grid():
    sal = _saliency()
    exact = upsample_grid(coarse_grid(sal, PAD, FWHM), (H, W))
    grid = MatMulSampler(G, PAD, FWHM, (H, W)).grid(sal.float()).double()
    assert (grid - exact).abs().max().item() <= 1e-6
    assert exact.abs().max().item() == 1.0  # a peak in the corner drives the clamp


def test_standard_graph_is_plain_onnx(exported):
    model = onnx.load(exported["standard"])
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert "GridSample" in ops and "MatMul" in ops and "Resize" not in ops and "Conv" not in ops
    assert {o.domain: o.version for o in model.opset_import} == {"": 17}


def test_plugin_node_contract(exported):
    model = onnx.load(exported["plugin"])
    onnx.checker.check_model(model)
    (node,) = [n for n in model.graph.node if n.domain == "frpt"]
    assert node.op_type == "InhomogeneousSample"
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {
        "out_h": H,
        "out_w": W,
        "pad": PAD,
        "fwhm": pytest.approx(FWHM),
        "align_corners": 1,
        "plugin_version": b"1",
        "plugin_namespace": b"frpt",
    }
    assert {o.domain: o.version for o in model.opset_import} == {"": 17, "frpt": 1}
    out_shape = [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert out_shape == ["N", 3, H, W]


def test_saliency_resize_matches_interpolate_softmax(tmp_path):
    torch.manual_seed(1)
    logits = torch.randn(2, 1, 5, 7) * 4  # peaky maps: float32 softmax, compared relative to each value
    want = torch.softmax(
        F.interpolate(logits.double(), size=(G, G), mode="bilinear", align_corners=True).flatten(1), 1
    ).view(2, 1, G, G)
    module = MatMulSaliencyMap((5, 7), G)
    got = module(logits)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.double().numpy(), want.numpy(), rtol=1e-5, atol=1e-10)
    _export(module, (logits[:1],), ["logits"], tmp_path / "sal.onnx")
    onnx_out = create_session(tmp_path / "sal.onnx").run(None, {"logits": logits.numpy()})[0]
    np.testing.assert_allclose(onnx_out, want.numpy(), rtol=1e-5, atol=1e-10)


def test_onnx_instance_norm_swapped_into_cah_equals_model_cah():
    from frpt.cah import CAH

    torch.manual_seed(0)
    cah = CAH(16, 4)
    features = torch.randn(3, 16, 2, 3) * 5 + 2
    want = cah(features)
    cah.norm = OnnxInstanceNorm()
    got = cah(features)
    assert (got - want).abs().max().item() <= 1e-5


def test_static_same_padding_is_exact_and_exports_one_conv_per_convolution(lite0_pretrained, tmp_path):
    """timm's TF-"same" convolutions (5 on Lite0: the stem and the 4 stride-2 depthwise ones) are swapped in a copy
    for fixed-padding ones: bit-identical outputs at the input size, one ONNX Conv each (asymmetric pads), no
    Shape/Ceil/Pad arithmetic; another input size is refused; a bias is carried."""
    import copy

    from timm.layers import Conv2dSame

    backbone = copy.deepcopy(lite0_pretrained)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        want = backbone.forward_features(x)
        assert static_same_padding(backbone, lambda: backbone.forward_features(x[:1])) == 5
        got = backbone.forward_features(x)
    assert torch.equal(got, want)
    assert not any(isinstance(m, Conv2dSame) for m in backbone.modules())
    assert sum(isinstance(m, Conv2dSame) for m in lite0_pretrained.modules()) == 5  # the original is untouched
    stem = backbone.stages[0][0]
    assert isinstance(stem, StaticPadConv2d) and stem.pads == (0, 1, 0, 1)
    with pytest.raises(ValueError, match="padding fixed for a"):
        backbone.forward_features(torch.zeros(1, 3, 64, 64))

    conv = Conv2dSame(3, 4, 5, stride=2, bias=True)
    fixed = StaticPadConv2d(conv, (13, 10))
    image = torch.randn(1, 3, 13, 10)
    assert fixed.pads == (1, 2, 2, 2) and torch.equal(fixed(image), conv(image))
    _export(fixed, (image,), ["x"], tmp_path / "conv.onnx")
    graph = onnx.load(tmp_path / "conv.onnx").graph
    (node,) = graph.node
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert node.op_type == "Conv" and len(node.input) == 3 and attrs["pads"] == [2, 1, 2, 2]
    onnx_out = create_session(tmp_path / "conv.onnx").run(None, {"x": image.numpy()})[0]
    np.testing.assert_allclose(onnx_out, conv(image).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_static_same_padding_refuses_a_convolution_the_probe_did_not_fix():
    from timm.layers import Conv2dSame

    net = nn.Sequential(Conv2dSame(3, 3, 3, stride=2), Conv2dSame(3, 3, 3, stride=2))
    with pytest.raises(ValueError, match="input sizes"):
        static_same_padding(net, lambda: net[0](torch.zeros(1, 3, 8, 8)))
