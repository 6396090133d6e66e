"""Checkpoints: self-contained round trip; missing / truncated / pickled / foreign / other-architecture refused."""

from __future__ import annotations

import fractions

import pytest
import torch

from frpt.checkpoint import load_checkpoint, save_checkpoint
from frpt.model import create_model
from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import FRPTConfig


@pytest.fixture
def saved(tmp_path, tiny_config: FRPTConfig):
    torch.manual_seed(0)
    model = create_model(tiny_config.replace(class_names=tuple("abcde"), embedding_dim=8), random_init=True)
    with torch.no_grad():
        model.parser.conv.weight.normal_(0, 0.05)
        model.classifier.bias.fill_(0.5)
    return model, save_checkpoint(model, tmp_path / "sub" / "model.pt")


def test_round_trip(saved) -> None:
    model, path = saved
    loaded = load_checkpoint(path)
    assert loaded.config == model.config and loaded.config.class_names == tuple("abcde")
    assert not loaded.training
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    assert torch.equal(loaded.embed_uint8(images), model.embed_uint8(images))
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_missing_and_truncated(saved, tmp_path) -> None:
    _, path = saved
    with pytest.raises(FrptError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FrptError, match="truncated"):
        load_checkpoint(cut)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(FrptError, match="truncated"):
        load_checkpoint(empty)


def test_pickled_object_refused(tmp_path) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"format": "frpt-checkpoint", "obj": fractions.Fraction(1, 3)}, evil)
    with pytest.raises(FrptError, match="pickled Python objects"):
        load_checkpoint(evil)


class _Payload:
    """Unpickling this runs os.system: a malicious checkpoint."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["zip", "legacy", "plain-pickle"])
def test_malicious_pickle_is_named_as_such_and_never_runs(tmp_path, how) -> None:
    """torch words this refusal "... GLOBAL posix.system whose module posix is blocked", not "Unsupported global":
    the file's own opcodes decide (issue 9), so every form says "pickled Python objects"."""
    import pickle

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    payload = {"format": "frpt-checkpoint", "x": _Payload(marker)}
    if how == "plain-pickle":
        evil.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, evil, _use_new_zipfile_serialization=how == "zip")
    with pytest.raises(FrptError, match=r"contains pickled Python objects \(posix\.system\)") as info:
        load_checkpoint(evil)
    assert "\n" not in str(info.value) and not marker.exists()


def test_pickled_backbone_weights_are_refused_the_same_way(tmp_path) -> None:
    from frpt.backbones import create_backbone

    weights = tmp_path / "resnet50.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": fractions.Fraction(1, 2)}, weights)
    with pytest.raises(FrptError, match=r"ResNet-50 weights .* contains pickled Python objects \(fractions\.Fraction"):
        create_backbone("resnet50", tap_stride=16, weights=weights)


def test_non_checkpoint_file_not_called_pickled(tmp_path) -> None:
    onnx_like = tmp_path / "model.onnx"  # a protobuf / any non-pickle bytes: "not a checkpoint", not "pickled"
    onnx_like.write_bytes(b"\x08\x08\x12\x07pytorch\x1a\x032.0" + bytes(range(256)))
    with pytest.raises(FrptError, match="truncated or not a checkpoint"):
        load_checkpoint(onnx_like)


def test_foreign_file_refused(tmp_path) -> None:
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(3)}, plain)
    with pytest.raises(FrptError, match="not an FRPT checkpoint"):
        load_checkpoint(plain)


def test_other_architecture_refused(saved, tmp_path) -> None:
    _, path = saved
    payload = torch.load(path, weights_only=True)
    payload["config"] = FRPTConfig.from_json(payload["config"]).replace(pooling="gem").to_json()
    other = tmp_path / "other.pt"
    torch.save(payload, other)
    with pytest.raises(FrptError, match="does not fit"):
        load_checkpoint(other)
    payload["config"] = '{"backbone": "efficientnet_lite0", "wings": 2}'
    torch.save(payload, other)
    with pytest.raises(FrptError, match="invalid frpt model config"):
        load_checkpoint(other)
