"""Deep visual prompts: learnable tokens put ahead of the sequence at a block's input, dropped at its output.

Provenance: Jia et al., "Visual Prompt Tuning" (ECCV 2022), deep variant, as used by Ren et al. (ICLR 2024):
each of the first ``depth`` blocks has its own tokens, concatenated **before** the CLS token at the block's
input and removed again at its output, so the sequence seen by the next block (and its CLS position) is
unchanged. Block ``i`` gets ``num - i * step`` tokens (at least 0). Initialisation as the authors': one
xavier-normal tensor ``[rows, num, D]`` per block, of which the block keeps its first ``n_i`` tokens.

* shared prompts (the image branch): ``rows = 1``, expanded over the batch;
* class-specific prompts (the semantic-proxy pass): ``rows = num_classes``, a batch takes the rows of its
  labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["DeepPrompts", "run_with_prompts"]


def run_with_prompts(block: Callable[[Tensor], Tensor], x: Tensor, prompt: Tensor | None) -> Tensor:
    """Run ``block`` on ``[prompt, x]`` and drop the prompt tokens from its output.

    Args:
        block: a transformer block ``[N, T, D] -> [N, T, D]``.
        x: ``[N, L, D]`` tokens (CLS first).
        prompt: ``[1, P, D]`` (shared, expanded over the batch) or ``[N, P, D]`` (per sample), or ``None``
            / ``P == 0`` for no prompt.

    Returns:
        ``[N, L, D]``: the block's output for the original tokens (CLS still at position 0).
    """
    if prompt is None or prompt.shape[1] == 0:
        return block(x)
    count = prompt.shape[1]
    return block(torch.cat([prompt.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1))[:, count:]


class DeepPrompts(nn.Module):
    """Per-block prompt tokens.

    Args:
        counts: tokens per block (``counts[i]`` for block ``i``; zeros allowed).
        width: token width ``D``.
        rows: independent prompt sets (1 = shared; ``num_classes`` = class-specific).

    Attributes:
        tokens: one parameter ``[rows, counts[i], D]`` per block.
    """

    def __init__(self, counts: Sequence[int], width: int, rows: int = 1) -> None:
        super().__init__()
        self.counts = tuple(int(c) for c in counts)
        first = max(self.counts, default=0)
        self.tokens = nn.ParameterList(
            nn.Parameter(nn.init.xavier_normal_(torch.zeros(rows, first, width))[:, :count].clone())
            for count in self.counts
        )

    @property
    def depth(self) -> int:
        """Blocks with a (possibly empty) prompt entry."""
        return len(self.counts)

    def shared(self) -> list[Tensor]:
        """Per-block ``[1, n_i, D]`` tokens (``rows == 1``)."""
        return list(self.tokens)

    def for_labels(self, labels: Tensor) -> list[Tensor]:
        """Per-block ``[N, n_i, D]`` tokens: row ``labels[j]`` for sample ``j`` (class-specific prompts)."""
        return [tokens[labels] for tokens in self.tokens]
