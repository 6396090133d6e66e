"""Semantic proxies (GRU cell, container update), Proxy-Anchor loss on hand-made inputs, class-balanced sampler."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from frpt.vpt.loss import proxy_anchor_loss
from frpt.vpt.proxies import ReluGRUCell, SemanticProxies, gru_container_update
from frpt.vpt.sampler import ClassBalancedBatchSampler
from frpt_runtime.errors import FrptError


def _log1p_exp_sum(*terms: float) -> float:
    return math.log(1.0 + sum(math.exp(t) for t in terms))


# Two samples in 2-D (unnormalised on purpose), three proxies; class 2 has no sample in the batch.
EMB = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
LABELS = torch.tensor([0, 1])
PROXIES = torch.tensor([[1.0, 0.0], [0.0, 0.5], [-4.0, 0.0]])
# cosine similarities: e0 -> (1, 0, -1), e1 -> (0, 1, 0)


@pytest.mark.parametrize("alpha, delta", [(2.0, 0.1), (32.0, 0.1)])
def test_proxy_anchor_by_hand_both_variants(alpha: float, delta: float) -> None:
    pos0 = _log1p_exp_sum(-alpha * (1 - delta))  # e0 with p0
    pos1 = _log1p_exp_sum(-alpha * (1 - delta))  # e1 with p1; p2 has no positive -> 0
    neg0 = _log1p_exp_sum(alpha * (0 + delta))  # e1 against p0
    neg1 = _log1p_exp_sum(alpha * (0 + delta))  # e0 against p1
    neg2 = _log1p_exp_sum(alpha * (-1 + delta), alpha * (0 + delta))  # e0, e1 against p2
    negative = (neg0 + neg1 + neg2) / 3
    original = (pos0 + pos1) / 2 + negative  # Kim et al.: divide by the 2 proxies with positives
    authors = (pos0 + pos1) / 3 + negative  # released code: mean over all 3 classes
    got = proxy_anchor_loss(EMB, LABELS, PROXIES, alpha=alpha, delta=delta)
    assert got.item() == pytest.approx(original, rel=1e-6)
    got_all = proxy_anchor_loss(EMB, LABELS, PROXIES, alpha=alpha, delta=delta, positive_mean="all")
    assert got_all.item() == pytest.approx(authors, rel=1e-6)
    assert got.dtype == torch.float32 and got.dim() == 0


def test_proxy_anchor_grad_and_errors() -> None:
    emb = EMB.clone().requires_grad_(True)
    proxy_anchor_loss(emb, LABELS, PROXIES).backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="positive_mean"):
        proxy_anchor_loss(EMB, LABELS, PROXIES, positive_mean="mean")
    with pytest.raises(ValueError, match=r"\[B, E\]"):
        proxy_anchor_loss(EMB, LABELS, PROXIES[:, :1])


def test_relu_gru_cell_formula() -> None:
    cell = ReluGRUCell(2)
    with torch.no_grad():
        for p in cell.parameters():
            p.zero_()
        cell.w_in.copy_(torch.eye(2))
        cell.b_z.fill_(math.log(3.0))  # z = sigmoid(ln 3) = 0.75
        cell.b_n.copy_(torch.tensor([0.0, -5.0]))  # the ReLU clips the second candidate to 0
    x, h = torch.tensor([[2.0, 1.0]]), torch.tensor([[4.0, 8.0]])
    # n = relu(x + b_n) = (2, 0); h' = 0.25 n + 0.75 h
    assert torch.allclose(cell(x, h), torch.tensor([[0.25 * 2 + 0.75 * 4, 0.75 * 8]]))
    cell.b_n.data.fill_(-100.0)
    assert torch.allclose(cell(x, h), 0.75 * h)  # tanh would give a negative candidate, ReLU gives 0


class _HalfPlus(torch.nn.Module):
    """A non-commutative toy cell: h' = h / 2 + x (order of the loop matters)."""

    def forward(self, x, h):
        return 0.5 * h + x


def test_container_update_loops_over_each_class_in_batch_order() -> None:
    container = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, 4.0]]), dim=1)
    feats = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 1.0], [2.0, 2.0], [5.0, 0.0]])
    labels = torch.tensor([2, 0, 2, 0, 0])  # class 0 three times, class 2 twice, classes 1 and 3 absent
    out = gru_container_update(_HalfPlus(), container, feats, labels)
    h0 = container[0]
    for f in (feats[1], feats[3], feats[4]):
        h0 = 0.5 * h0 + f
    h2 = 0.5 * (0.5 * container[2] + feats[0]) + feats[2]
    expected = F.normalize(torch.stack([h0, container[1], h2, container[3]]), dim=1)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(out.norm(dim=1), torch.ones(4))
    assert torch.equal(container, F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, 4.0]]), dim=1))


def test_semantic_update_keeps_graph_for_the_batch_and_detaches_the_buffer() -> None:
    torch.manual_seed(0)
    sem = SemanticProxies((2,), width=8, embed_dim=4, num_classes=3)
    assert torch.allclose(sem.container.norm(dim=1), torch.ones(3))
    feats = F.normalize(torch.randn(4, 4), dim=1).requires_grad_(True)
    labels = torch.tensor([1, 1, 2, 2])
    old = sem.container.clone()
    updated = sem.update(feats, labels)
    assert updated.grad_fn is not None and sem.container.grad_fn is None and not sem.container.requires_grad
    assert torch.equal(sem.container, updated.detach())
    assert torch.allclose(sem.container[0], old[0]) and not torch.allclose(sem.container[1], old[1])
    updated.sum().backward()
    assert feats.grad is not None and sem.cell.w_iz.grad is not None and sem.cell.w_iz.grad.abs().sum() > 0
    # a second batch starts from the stored values with no history
    again = sem.update(F.normalize(torch.randn(2, 4), dim=1), torch.tensor([0, 0]))
    again.sum().backward()  # would raise if the first batch's graph were reachable (freed buffers)


def test_sampler_properties() -> None:
    labels = [c for c in range(10) for _ in range(c % 3 + 1)]  # classes with 1, 2 or 3 images
    sampler = ClassBalancedBatchSampler(labels, batch_size=8, samples_per_class=2, seed=5)
    assert len(sampler) == len(labels) // 8
    batches = [b for _ in range(5) for b in sampler]
    for batch in batches:
        assert len(batch) == 8
        per_class = Counter(labels[i] for i in batch)
        assert len(per_class) == 4 and set(per_class.values()) == {2}
        for j in range(0, 8, 2):  # k consecutive indices per class
            assert labels[batch[j]] == labels[batch[j + 1]]
            if labels.count(labels[batch[j]]) >= 2:
                assert batch[j] != batch[j + 1]  # distinct images when the class has enough
    again = ClassBalancedBatchSampler(labels, batch_size=8, samples_per_class=2, seed=5)
    assert [b for _ in range(5) for b in again] == batches
    other = ClassBalancedBatchSampler(labels, batch_size=8, samples_per_class=2, seed=6)
    assert [b for _ in range(5) for b in other] != batches
    used = Counter(labels[i] for b in batches for i in b)
    assert set(used) == set(range(10))  # every class drawn over a few epochs


def test_sampler_errors_one_line() -> None:
    labels = np.repeat(np.arange(3), 4)
    with pytest.raises(FrptError, match="needs 4 classes, the data has 3: lower --batch-size"):
        ClassBalancedBatchSampler(labels, batch_size=8, samples_per_class=2)
    with pytest.raises(FrptError, match="multiple of --samples-per-class"):
        ClassBalancedBatchSampler(labels, batch_size=5, samples_per_class=2)
