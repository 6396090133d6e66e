"""VPT model: prompt insertion/removal, equality with plain timm, BitFit freezing, checkpoint round trip through the
shared family-dispatched checkpoint, the model registry, factory errors."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from vpt_testkit import random_images, small_config

from frpt import families
from frpt.checkpoint import load_checkpoint, save_checkpoint
from frpt.vpt.loss import proxy_anchor_loss
from frpt.vpt.model import VPTModel, create_model
from frpt.vpt.prompts import DeepPrompts, run_with_prompts
from frpt.vpt.train import VPTTrainSettings, build_optimisers
from frpt.vpt.vit_weights import create_vit
from frpt_runtime.errors import FrptError
from frpt_runtime.families import FAMILIES
from frpt_runtime.families.vpt import VPTConfig


@pytest.fixture(scope="module")
def vit28():
    """One random 28 px ViT-S/14 (timm's initialisation of 22 M parameters is the slow part); copied per model."""
    torch.manual_seed(0)
    return create_vit(small_config(), random_init=True)


def _model(vit28, seed: int = 0, **changes) -> VPTModel:
    torch.manual_seed(seed)
    return VPTModel(small_config(**changes), copy.deepcopy(vit28))


@pytest.fixture(scope="module")
def model(vit28) -> VPTModel:
    return _model(vit28).eval()


def test_run_with_prompts_puts_tokens_ahead_and_drops_them() -> None:
    x, prompt = torch.randn(2, 5, 8), torch.randn(1, 3, 8)
    seen = []

    def block(t):
        seen.append(t)
        return 2 * t

    out = run_with_prompts(block, x, prompt)
    assert seen[0].shape == (2, 8, 8)
    assert torch.equal(seen[0][:, :3], prompt.expand(2, -1, -1)) and torch.equal(seen[0][:, 3], x[:, 0])
    assert out.shape == x.shape and torch.equal(out, 2 * x)  # CLS back at 0, prompt outputs dropped
    per_sample = torch.randn(2, 3, 8)
    run_with_prompts(block, x, per_sample)
    assert torch.equal(seen[1][:, :3], per_sample)
    assert torch.equal(run_with_prompts(block, x, torch.zeros(1, 0, 8)), 2 * x) and len(seen) == 3


def test_block_sequence_lengths_follow_the_counts(model: VPTModel) -> None:
    cfg = model.config
    assert cfg.prompt_counts == (4, 3, 2) and [t.shape[1] for t in model.prompts.tokens] == [4, 3, 2]
    lengths: list[int] = []
    record = lambda _module, args: lengths.append(args[0].shape[1])  # noqa: E731
    hooks = [blk.register_forward_pre_hook(record) for blk in model.vit.blocks]
    try:
        with torch.no_grad():
            tokens = model.tokens(random_images(2, 28), model.prompts.shared())
    finally:
        for hook in hooks:
            hook.remove()
    assert lengths == [1 + 4 + 4, 1 + 4 + 3, 1 + 4 + 2] + [1 + 4] * 9
    assert tokens.shape == (2, 5, 384)


def test_prompts_init_as_authors_slices() -> None:
    torch.manual_seed(0)
    prompts = DeepPrompts((6, 4, 0), width=32, rows=3)
    assert [tuple(t.shape) for t in prompts.tokens] == [(3, 6, 32), (3, 4, 32), (3, 0, 32)]
    labels = torch.tensor([2, 0, 2])
    picked = prompts.for_labels(labels)
    assert torch.equal(picked[0][0], prompts.tokens[0][2]) and picked[1].shape == (3, 4, 32)
    # xavier-normal of the full [rows, 6, 32] tensor: std sqrt(2 / (6*32 + 3*32))
    assert abs(float(prompts.tokens[0].detach().std()) - (2 / (6 * 32 + 3 * 32)) ** 0.5) < 0.02


@pytest.mark.parametrize("depth", [0, 12])
def test_zero_prompts_equal_plain_timm_exactly(vit28, depth: int) -> None:
    m = _model(vit28, num_prompt=0, prompt_depth=depth, prompt_block_step=0).eval()
    x = random_images(3, 28)
    with torch.no_grad():
        ours = m.tokens(x, m.prompts.shared())
        plain = m.vit.forward_features(x)
        embedding = m(x)
    assert torch.equal(ours, plain)
    assert torch.equal(embedding, F.normalize(m.head(m.fc_norm(plain[:, 0])), dim=1, eps=1e-12))


def test_embedding_contract(model: VPTModel) -> None:
    images = torch.randint(0, 256, (3, 28, 28, 3), dtype=torch.uint8)
    model.train()
    out = model.embed_uint8(images)
    assert model.training  # mode restored
    model.eval()
    assert out.shape == (3, 16) and out.dtype == torch.float32
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        model.prepare(images.permute(0, 3, 1, 2))


def _bitfit_step(vit28, optimizer: str, **changes) -> tuple[VPTModel, dict[str, torch.Tensor]]:
    m = _model(vit28, seed=1, **changes).train()
    before = {k: v.detach().clone() for k, v in m.state_dict().items()}
    main, proxies, _ = build_optimisers(
        m, VPTTrainSettings(optimizer=optimizer, lr=0.05, lr_proxy=0.1, weight_decay=0.0)
    )
    x, labels = random_images(6, 28, seed=2), torch.tensor([0, 0, 3, 3, 1, 1])
    loss = proxy_anchor_loss(m(x), labels, m.loss_proxies(x, labels))
    loss.backward()
    main.step()
    proxies.step()
    return m, before


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_bitfit_only_biases_prompts_heads_gru_and_proxies_change(vit28, optimizer: str) -> None:
    m, before = _bitfit_step(vit28, optimizer)
    after = m.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    vit_biases = {f"vit.{n}" for n, _ in m.vit.named_parameters() if n.endswith("bias")}
    frozen = {f"vit.{n}" for n, _ in m.vit.named_parameters()} - vit_biases
    assert len(vit_biases) == 1 + 12 * 6 + 1 and frozen  # patch proj; norm1/2, qkv, proj, fc1, fc2; final norm
    assert not changed & frozen  # every other ViT tensor bit-identical (cls_token, pos_embed, weights, gammas)
    assert vit_biases <= changed
    trainable_heads = {k for k in before if k.startswith(("prompts.", "fc_norm.", "head.", "semantic.", "proxy_bias"))}
    assert changed <= vit_biases | trainable_heads
    for part in (
        "prompts.tokens.0",
        "fc_norm.weight",
        "head.weight",
        "proxy_bias",
        "semantic.prompts.tokens.0",
        "semantic.norm.weight",
        "semantic.head.weight",
        "semantic.cell.w_iz",
        "semantic.container",
    ):
        assert part in changed, part
    # class-specific prompt rows of classes absent from the batch get no update (no weight decay here)
    for row in (2, 4):
        assert torch.equal(before["semantic.prompts.tokens.0"][row], after["semantic.prompts.tokens.0"][row])
    assert {id(p) for p in m.trainable_parameters()} == {id(p) for p in m.parameters() if p.requires_grad}


def test_bitfit_off_freezes_every_vit_tensor(vit28) -> None:
    m, before = _bitfit_step(vit28, "sgd", bitfit=False, semantic_proxies=False)
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("vit."))
    assert m.semantic is None and not torch.equal(before["proxy_bias"], after["proxy_bias"])


def test_loss_proxies(vit28) -> None:
    m = _model(vit28, proxy_bias_ratio=0.3).train()
    x, labels = random_images(4, 28, seed=4), torch.tensor([1, 1, 4, 4])
    before = m.semantic.container.clone()
    proxies = m.loss_proxies(x, labels)
    container = m.semantic.container
    assert not torch.allclose(container[1], before[1]) and torch.allclose(container[0], before[0])
    assert torch.allclose(proxies, F.normalize(0.3 * m.proxy_bias + 0.7 * container, dim=1), atol=1e-6)
    assert proxies.shape == (5, 16) and proxies.grad_fn is not None
    plain = _model(vit28, semantic_proxies=False)
    assert torch.equal(plain.loss_proxies(x, labels), F.normalize(plain.proxy_bias, dim=1))


def test_parameter_report(model: VPTModel) -> None:
    report = model.parameter_report()
    assert report["backbone"] == sum(p.numel() for p in model.vit.parameters())
    biases = sum(p.numel() for n, p in model.vit.named_parameters() if n.endswith("bias"))
    prompts = 384 * (4 + 3 + 2)
    head = 2 * 384 + 384 * 16 + 16
    assert report["image_branch_trainable"] == biases + prompts + head
    assert report["image_branch"] == report["backbone"] + prompts + head
    assert report["trainable"] > report["image_branch_trainable"] and report["total"] > report["image_branch"]


def test_checkpoint_round_trip_weights_only(model: VPTModel, tmp_path) -> None:
    """The shared checkpoint writer and reader (frpt.checkpoint) carry the family; plain data, weights_only."""
    path = save_checkpoint(model, tmp_path / "vpt.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["family"] == "vpt" and isinstance(payload["config"], str)
    loaded = load_checkpoint(path)
    assert isinstance(loaded, VPTModel) and loaded.config == model.config and not loaded.training
    pairs = zip(model.state_dict().items(), loaded.state_dict().items(), strict=True)
    assert all(ka == kb and torch.equal(a, b) for (ka, a), (kb, b) in pairs)  # container, GRU, p_prompts included
    images = torch.randint(0, 256, (2, 28, 28, 3), dtype=torch.uint8)
    assert torch.equal(model.embed_uint8(images), loaded.embed_uint8(images))


def test_checkpoint_errors_are_one_line(model: VPTModel, tmp_path) -> None:
    payload = torch.load(save_checkpoint(model, tmp_path / "good.pt"), weights_only=True)
    config = payload["config"]
    for i, (broken, match) in enumerate(
        (
            (dict(payload, config="{not json"), "has an unreadable model config"),
            (dict(payload, config=config.replace('"input_size": 28', '"input_size": 30')),
             "invalid vpt model config: input_size must be a multiple of the patch size 14"),
            (dict(payload, config=config.replace('"embed_dim": 16', '"embed_dim": 8')),
             "does not fit the vpt vit_small_patch14_dinov2 architecture"),
            (dict(payload, family="xyz"), "unknown model family 'xyz'"),
            ({k: v for k, v in payload.items() if k != "state_dict"}, "holds no state_dict"),
        )
    ):  # fmt: skip
        path = tmp_path / f"bad{i}.pt"
        torch.save(broken, path)
        with pytest.raises(FrptError, match=match) as info:
            load_checkpoint(path)
        assert "\n" not in str(info.value)


def test_registered_in_the_model_registry() -> None:
    assert set(families.FACTORIES) == set(FAMILIES) and families.FACTORIES["vpt"] is create_model
    model = families.create_model(small_config(), random_init=True)
    assert isinstance(model, VPTModel) and model.embedding_dim == 16
    surface = ("config", "embedding_dim", "prepare", "embed", "embed_uint8", "trainable_parameters", "parameter_report")
    assert all(hasattr(model, name) for name in surface)


def test_factory_errors() -> None:
    with pytest.raises(FrptError, match="needs a VPTConfig"):
        create_model(object(), random_init=True)  # type: ignore[arg-type]
    with pytest.raises(FrptError, match="needs pretrained weights from a file.*--backbone-weights"):
        create_model(VPTConfig.for_backbone("vit_small_patch16_224", input_size=32))
