"""What every family's model offers the trainer, the exporter and the tests: one uint8 entry point.

A family's model subclasses :class:`EmbeddingModel` and defines ``prepare`` (uint8 ``[N, S, S, 3]`` ->
normalised float32 ``[N, 3, S, S]``) and ``embed`` (that -> L2-normalised float32 ``[N, D]``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["EmbeddingModel"]


class EmbeddingModel(nn.Module):
    """Base of the families' models: :meth:`embed_uint8` and :meth:`trainable_parameters` on top of theirs."""

    @torch.no_grad()
    def embed_uint8(self, images: Tensor) -> Tensor:
        """uint8 ``[N, S, S, 3]`` -> L2-normalised float32 embedding ``[N, D]`` (eval mode, no grad).

        The module's train/eval mode is restored afterwards.
        """
        was_training = self.training
        self.eval()
        try:
            return self.embed(self.prepare(images))
        finally:
            self.train(was_training)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimisers may update (those with ``requires_grad``; frozen backbones have none)."""
        return [p for p in self.parameters() if p.requires_grad]
