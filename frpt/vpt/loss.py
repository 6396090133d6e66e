"""Proxy-Anchor loss (Kim et al., CVPR 2020, Eq. 4) with the VPT semantic-proxy paper's settings.

For L2-normalised embeddings ``e`` ``[B, E]``, labels ``y`` and L2-normalised proxies ``p`` ``[C, E]``,
with ``s(x, p)`` the cosine similarity, ``X_p+`` the batch samples of class ``p`` and ``X_p-`` the others::

    pos(p) = log(1 + Σ_{x ∈ X_p+} exp(−α (s(x, p) − δ)))
    neg(p) = log(1 + Σ_{x ∈ X_p-} exp( α (s(x, p) + δ)))
    loss   = (1/|P+|) Σ_{p ∈ P+} pos(p)  +  (1/C) Σ_p neg(p)

where ``P+`` are the proxies with at least one positive in the batch (``positive_mean="positive"``, the
original, default). The authors' code (``criteria/dml_proxy_peft.py``, ``both_all``) divides the
positive sum by ``C`` instead, a class without positives counting 0 (``positive_mean="all"``). α = 32 for
both terms and δ = 0.1 (the authors' ``loss_oproxy_*`` defaults). Each ``log(1 + Σ exp)`` is evaluated
as a masked ``logsumexp`` with an appended zero, stable for any α.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from frpt.vpt.recipes import POSITIVE_MEANS

__all__ = ["proxy_anchor_loss"]


def _log1p_sum_exp(logits: Tensor, mask: Tensor) -> Tensor:
    """``log(1 + Σ_b mask[b, c] exp(logits[b, c]))`` per column ``c``: ``[B, C] -> [C]`` (0 where empty)."""
    masked = logits.masked_fill(~mask, float("-inf"))
    zero = torch.zeros_like(masked[:1])
    return torch.logsumexp(torch.cat([masked, zero], dim=0), dim=0)


def proxy_anchor_loss(
    embeddings: Tensor,
    labels: Tensor,
    proxies: Tensor,
    alpha: float = 32.0,
    delta: float = 0.1,
    positive_mean: str = "positive",
) -> Tensor:
    """Proxy-Anchor loss over all ``C`` proxies.

    Args:
        embeddings: ``[B, E]`` float (normalised here).
        labels: ``[B]`` int64 in ``[0, C)``.
        proxies: ``[C, E]`` float (normalised here).
        alpha: scale of both terms.
        delta: margin (positive term uses ``s − δ``, negative ``s + δ``).
        positive_mean: ``positive`` (divide by the number of proxies with positives; Kim et al.) or ``all``
            (divide by ``C``; the authors' code).

    Returns:
        Scalar float32 loss.

    Raises:
        ValueError: unknown ``positive_mean`` or mismatched shapes.
    """
    if positive_mean not in POSITIVE_MEANS:
        raise ValueError(f"positive_mean must be one of {POSITIVE_MEANS}, got {positive_mean!r}")
    if embeddings.dim() != 2 or proxies.dim() != 2 or embeddings.shape[1] != proxies.shape[1]:
        raise ValueError(
            f"embeddings [B, E] and proxies [C, E] needed, got {tuple(embeddings.shape)}, {tuple(proxies.shape)}"
        )
    sims = F.normalize(embeddings.float(), dim=1) @ F.normalize(proxies.float(), dim=1).T  # [B, C]
    positive = F.one_hot(labels, proxies.shape[0]).bool()
    pos = _log1p_sum_exp(-alpha * (sims - delta), positive)
    neg = _log1p_sum_exp(alpha * (sims + delta), ~positive)
    with_positives = positive.any(dim=0)
    denominator = with_positives.sum() if positive_mean == "positive" else proxies.shape[0]
    return pos.sum() / denominator + neg.mean()
