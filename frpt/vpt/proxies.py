"""Semantic proxies (training only): class-specific prompts -> per-class container -> proxies (ICLR 2024, §3).

Provenance: Ren et al., ICLR 2024, "semantic proxies"; released code ``architectures/peft_vit.py``
(``forward_proxy_mix_bias``, ``_semantic_mix_with_container``, ``Simple_GRUCell`` with
``semantic_mix_type = gru_relu``). Facts only; written anew.

For a class-balanced batch (images ``x``, labels ``y``, ``k >= 2`` samples per class):

1. a second ViT pass of the same images with **class-specific** prompts ``p_prompts[y]`` (and no shared
   prompts) -> final norm -> CLS -> own LayerNorm + Linear -> L2 normalise: ``f`` ``[B, E]``;
2. per class ``c`` in the batch, the container row ``h = container[c]`` is updated by a GRU-like cell with
   ReLU in place of tanh, looping over the class's samples in batch order (:func:`gru_container_update`);
3. the updated container is renormalised row-wise; a detached copy is kept for the next batch (so the graph
   of one batch never reaches into the next);
4. proxies for the loss: ``normalize(r * proxy_bias + (1 - r) * container)`` over **all** classes.

Initialisation as the authors': container rows ``normalize(xavier_uniform / 8)``; cell matrices
xavier-uniform, cell biases zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from frpt.vpt.prompts import DeepPrompts

__all__ = ["ReluGRUCell", "SemanticProxies", "gru_container_update", "initial_proxy_rows"]


def initial_proxy_rows(num_classes: int, dim: int) -> Tensor:
    """``xavier_uniform([num_classes, dim]) / 8`` (the authors' initialisation of proxy bias and container)."""
    return nn.init.xavier_uniform_(torch.zeros(num_classes, dim)) / 8.0


class ReluGRUCell(nn.Module):
    """GRU cell with ReLU as the candidate's activation (``gru_relu``); no hidden-side biases.

    ``z = σ(x Wiz + h Whz + bz)``, ``r = σ(x Wir + h Whr + br)``, ``n = relu(x Win + r ⊙ (h Whn) + bn)``,
    ``h' = (1 − z) ⊙ n + z ⊙ h``. Matrices are ``[in, hidden]`` (applied as ``x @ W``).

    Args:
        size: input and hidden width ``E``.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        for gate in ("z", "r", "n"):
            self.register_parameter(f"w_i{gate}", nn.Parameter(nn.init.xavier_uniform_(torch.empty(size, size))))
            self.register_parameter(f"w_h{gate}", nn.Parameter(nn.init.xavier_uniform_(torch.empty(size, size))))
            self.register_parameter(f"b_{gate}", nn.Parameter(torch.zeros(size)))

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        """``x`` ``[U, E]``, ``h`` ``[U, E]`` -> ``h'`` ``[U, E]``."""
        z = torch.sigmoid(x @ self.w_iz + h @ self.w_hz + self.b_z)
        r = torch.sigmoid(x @ self.w_ir + h @ self.w_hr + self.b_r)
        n = F.relu(x @ self.w_in + r * (h @ self.w_hn) + self.b_n)
        return (1 - z) * n + z * h


def gru_container_update(cell: nn.Module, container: Tensor, features: Tensor, labels: Tensor) -> Tensor:
    """The container after one batch (pure; differentiable through ``features`` and ``cell``).

    Every class present in ``labels`` has its row updated by ``cell`` once per sample of that class, in
    batch order (``h <- cell(f_j, h)``); classes may have different counts (each row stops at its own
    count). Then every row is L2-normalised.

    Args:
        cell: ``(x [U, E], h [U, E]) -> [U, E]``.
        container: ``[C, E]`` current rows (not modified).
        features: ``[B, E]`` the batch's semantic features.
        labels: ``[B]`` int64 class indices in ``[0, C)``.

    Returns:
        ``[C, E]`` normalised new container.
    """
    classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    order = torch.argsort(inverse, stable=True)  # samples grouped by class, batch order kept within a class
    starts = torch.cumsum(counts, 0) - counts
    h = container[classes]
    for step in range(int(counts.max())):
        active = counts > step
        x = features[order[torch.where(active, starts + step, starts)]]
        h = torch.where(active[:, None], cell(x, h), h)
    return F.normalize(container.index_put((classes,), h), dim=1)


class SemanticProxies(nn.Module):
    """Class-specific prompts, the proxy head, the GRU cell and the per-class container.

    Args:
        counts: class-specific prompt tokens per block.
        width: ViT token width ``D``.
        embed_dim: proxy width ``E`` (= the image embedding's).
        num_classes: ``C``.

    Attributes:
        prompts: :class:`DeepPrompts` with ``rows = C``.
        norm, head: LayerNorm(D) and Linear(D -> E) of the proxy branch.
        cell: :class:`ReluGRUCell`.
        container: buffer ``[C, E]``, rows L2-normalised; updated by :meth:`update` (saved in checkpoints).
    """

    def __init__(self, counts: Sequence[int], width: int, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        self.prompts = DeepPrompts(counts, width, rows=num_classes)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, embed_dim)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.cell = ReluGRUCell(embed_dim)
        self.register_buffer("container", F.normalize(initial_proxy_rows(num_classes, embed_dim), dim=1))

    def features(self, cls_token: Tensor) -> Tensor:
        """Final-norm CLS ``[B, D]`` -> L2-normalised semantic features ``[B, E]``."""
        return F.normalize(self.head(self.norm(cls_token)), dim=1, eps=1e-12)

    def update(self, features: Tensor, labels: Tensor) -> Tensor:
        """Update the container with one batch; returns the new ``[C, E]`` container (with its graph).

        The buffer keeps a detached copy, so the next batch starts from values without history.
        """
        updated = gru_container_update(self.cell, self.container, features, labels)
        with torch.no_grad():
            self.container.copy_(updated)
        return updated
