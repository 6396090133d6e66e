"""Backbones (registry, freezing, taps, real weights) and the FRPT model (shapes, grads, frozen training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from frpt.backbones import create_backbone, list_backbones
from frpt.model import FRPT, create_model
from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import BACKBONE_PIXEL_STATS, MIN_INPUT_SIZE, FRPTConfig

TAP_CHANNELS = {
    "efficientnet_lite0": ({4: 24, 8: 40, 16: 112, 32: 320}, 1280),
    "resnet50": ({4: 256, 8: 512, 16: 1024, 32: 2048}, 2048),
}


@pytest.mark.parametrize("name", list_backbones())
def test_backbone_frozen_with_taps(name: str) -> None:
    taps, features = TAP_CHANNELS[name]
    x = torch.randn(1, 3, 64, 64)
    for stride, channels in taps.items():
        bb = create_backbone(name, tap_stride=stride, random_init=True)
        assert bb.tap_channels_by_stride == taps and bb.tap_channels == channels and bb.num_features == features
        assert all(not p.requires_grad for p in bb.parameters())
        bb.train()
        assert not bb.training and not any(m.training for m in bb.modules())
        with torch.no_grad():
            assert bb.forward_tap(x).shape == (1, channels, 64 // stride, 64 // stride)
    with torch.no_grad():
        assert bb.forward_features(x).shape == (1, features, 2, 2)


def test_backbone_errors() -> None:
    with pytest.raises(FrptError, match="unknown backbone"):
        create_backbone("vgg11")
    with pytest.raises(FrptError, match="strides"):
        create_backbone("efficientnet_lite0", tap_stride=2, random_init=True)
    with pytest.raises(FrptError, match="--backbone-weights"):
        create_backbone("resnet50")


def test_empty_weights_file_one_line(tmp_path) -> None:
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")  # torch.load fails with an empty message here: no IndexError
    with pytest.raises(FrptError, match="cannot read ResNet-50 weights"):
        create_backbone("resnet50", weights=empty)


def test_resnet50_weights_from_user_file(tmp_path) -> None:
    from torchvision.models import resnet50

    state = resnet50(weights=None).state_dict()
    path = tmp_path / "r50.pth"
    torch.save(state, path)
    bb = create_backbone("resnet50", weights=path)
    assert torch.equal(bb.stages[0][0].weight, state["conv1.weight"])
    assert torch.equal(bb.stages[4][2].conv3.weight, state["layer4.2.conv3.weight"])
    del state["fc.bias"]
    torch.save(state, path)
    with pytest.raises(FrptError, match="do not match"):
        create_backbone("resnet50", weights=path)
    with pytest.raises(FrptError, match="not found"):
        create_backbone("resnet50", weights=tmp_path / "nope.pth")


def _center_crop(img: np.ndarray, size: int) -> np.ndarray:
    im = Image.fromarray(img)
    scale = size / min(im.size)
    im = im.resize((round(im.size[0] * scale), round(im.size[1] * scale)), Image.BICUBIC)
    arr = np.asarray(im)
    y0, x0 = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return arr[y0 : y0 + size, x0 : x0 + size]


def test_lite0_weights_are_real_imagenet_weights(lite0_pretrained) -> None:
    from skimage import data

    mean, std = BACKBONE_PIXEL_STATS["efficientnet_lite0"]
    img = torch.from_numpy(_center_crop(data.chelsea(), 224).copy()).float().permute(2, 0, 1)[None] / 255.0
    x = (img - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        top5 = lite0_pretrained.classifier(lite0_pretrained.forward_features(x)).topk(5).indices[0].tolist()
    assert any(281 <= c <= 285 for c in top5), top5  # tabby / tiger cat / Persian / Siamese / Egyptian cat
    assert 281 <= top5[0] <= 285


def _model(config: FRPTConfig, seed: int = 0) -> FRPT:
    torch.manual_seed(seed)
    model = create_model(config, random_init=True)
    with torch.no_grad():  # a non-trivial saliency conv, so DPP really warps
        model.parser.conv.weight.normal_(0, 0.05)
    return model


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"dpp_variant": "paper", "paper_kernel": 7},
        {"pooling": "gem", "embedding_dim": 16},
        {"input_size": 77, "cah_reduction": 1, "embedding_dim": 8},
    ],
)
def test_forward_contract(tiny_config: FRPTConfig, overrides: dict) -> None:
    config = tiny_config.replace(**overrides)
    model = _model(config).eval()
    s = config.input_size
    images = torch.randint(0, 256, (2, s, s, 3), dtype=torch.uint8)
    out = model(model.prepare(images))
    assert model.embedding_dim == (config.embedding_dim or 1280)
    assert out.embedding.shape == (2, model.embedding_dim) and out.embedding.dtype == torch.float32
    assert torch.allclose(out.embedding.norm(dim=1), torch.ones(2), atol=1e-5)
    assert out.logits.shape == (2, config.num_classes)
    assert out.saliency.shape == (2, 1, config.grid, config.grid)
    assert torch.allclose(out.saliency.sum(dim=(1, 2, 3)), torch.ones(2), atol=1e-5)
    assert torch.equal(model.embed_uint8(images), out.embedding)


def test_prepare_is_cast_then_nchw_then_normalise(tiny_config: FRPTConfig) -> None:
    model = _model(tiny_config.replace(pixel_mean=(0.1, 0.2, 0.3), pixel_std=(0.5, 0.25, 2.0)))
    images = torch.randint(0, 256, (1, 64, 64, 3), dtype=torch.uint8)
    x = model.prepare(images)
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32
    expected = (images[0, 5, 7, 1].item() / 255.0 - 0.2) / 0.25
    assert x[0, 1, 5, 7].item() == pytest.approx(expected, abs=1e-6)


def test_small_input_refused_for_new_models_only(synthetic_root) -> None:
    """One limit (MIN_INPUT_SIZE) for training new models; a config read from an older, smaller file still parses."""
    from frpt.train import TrainSettings, train

    assert FRPTConfig(input_size=48).input_size == 48
    with pytest.raises(ValueError, match=r"input_size must be an integer in \[1, "):
        FRPTConfig(input_size=0)
    with pytest.raises(FrptError, match=f"below the smallest trainable size {MIN_INPUT_SIZE}"):
        train(FRPTConfig(input_size=MIN_INPUT_SIZE - 1), synthetic_root, TrainSettings(epochs=1), random_init=True)


def test_gradients_reach_saliency_conv_through_frozen_backbone(tiny_config: FRPTConfig) -> None:
    model = _model(tiny_config).train()
    images = torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8)
    out = model(model.prepare(images))
    torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 3])).backward()
    assert model.parser.conv.weight.grad is not None and model.parser.conv.weight.grad.abs().sum() > 0
    assert model.cah.fc1.weight.grad.abs().sum() > 0 and model.classifier.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.parameters())


def test_optimiser_step_leaves_backbone_bit_identical(tiny_config: FRPTConfig) -> None:
    model = _model(tiny_config)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}  # incl. BN running stats
    parser_before = model.parser.conv.weight.clone()
    opt = torch.optim.SGD(model.trainable_parameters(), lr=0.1, momentum=0.9)
    model.train()
    images = torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8)
    for _ in range(2):
        opt.zero_grad()
        out = model(model.prepare(images))
        torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 3])).backward()
        opt.step()
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(parser_before, model.parser.conv.weight)


def test_parameter_report(tiny_config: FRPTConfig) -> None:
    report = _model(tiny_config).parameter_report()
    c = 1280
    hidden = c // tiny_config.cah_reduction
    expected = (112 + 1) + (c * hidden + hidden + hidden * c + c) + (c * 5 + 5)
    assert report["trainable"] == expected
    assert report["total"] == report["trainable"] + report["backbone"]
    assert report["backbone"] > 3_000_000


def test_cah_formula() -> None:
    from frpt.cah import CAH, instance_norm

    torch.manual_seed(0)
    feats = torch.randn(2, 16, 5, 3) * 2 + 1
    assert torch.allclose(instance_norm(feats), torch.nn.functional.instance_norm(feats, eps=1e-5), atol=1e-5)
    assert torch.equal(instance_norm(torch.randn(2, 4, 1, 1)), torch.zeros(2, 4, 1, 1))
    cah = CAH(16, reduction=4)
    assert cah.fc1.out_features == 4
    w = torch.sigmoid(cah.fc2(torch.relu(cah.fc1(feats.mean(dim=(2, 3))))))[:, :, None, None]
    assert torch.allclose(cah(feats), w * feats + (1 - w) * instance_norm(feats), atol=1e-6)
    with torch.no_grad():
        cah.fc2.bias.fill_(50.0)  # w -> 1: identity branch
        assert torch.allclose(cah(feats), feats, atol=1e-5)
        cah.fc2.bias.fill_(-50.0)  # w -> 0: instance-normalised branch
        assert torch.allclose(cah(feats), instance_norm(feats), atol=1e-5)


def test_heads() -> None:
    from frpt.cah import EmbeddingHead

    feats = torch.rand(4, 8, 3, 3) + 0.1
    assert torch.allclose(EmbeddingHead(8, "avg")(feats), feats.mean(dim=(2, 3)))
    gem = EmbeddingHead(8, "gem", gem_p=1.0).eval()
    assert torch.allclose(gem(feats), gem.neck(feats.mean(dim=(2, 3))), atol=1e-6)
    cubic = EmbeddingHead(8, "gem", gem_p=3.0)
    assert torch.allclose(cubic.gem(feats), feats.pow(3).mean(dim=(2, 3)).pow(1 / 3), atol=1e-6)
    assert not cubic.neck.bias.requires_grad and cubic.gem.p.requires_grad
    projected = EmbeddingHead(8, "avg", embedding_dim=3)
    assert projected.embedding_dim == 3
    assert torch.allclose(projected(feats), projected.proj(feats.mean(dim=(2, 3))), atol=1e-6)
    assert EmbeddingHead(8, "gem", embedding_dim=3).neck.num_features == 3


def test_warp_panels(tiny_config: FRPTConfig) -> None:
    from frpt.visualize import warp_grid, warp_panels

    model = create_model(tiny_config, random_init=True)  # zero-initialised parser: uniform saliency
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    images = torch.stack((xx * 4, yy * 4, (xx + yy) * 2), dim=-1).to(torch.uint8)[None].repeat(2, 1, 1, 1)
    original, overlay, warped = warp_panels(model, images)
    assert original.shape == overlay.shape == warped.shape == (2, 64, 64, 3) and warped.dtype == np.uint8
    assert np.array_equal(original, images.numpy())
    assert np.abs(warped.astype(int) - original.astype(int)).max() <= 3  # near-identity warp of a smooth ramp
    with torch.no_grad():
        model.parser.conv.bias.fill_(0.0)
        model.parser.conv.weight.normal_(0, 1.0)
    _, _, moved = warp_panels(model, images)
    assert np.abs(moved.astype(int) - original.astype(int)).max() > 10
    assert warp_grid(model, images).size == (3 * 64, 64 * 2 + 14)
