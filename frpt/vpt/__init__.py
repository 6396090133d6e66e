"""The VPT semantic-proxy model family (Ren et al., ICLR 2024; DESIGN.md §2b).

Modules: :mod:`~frpt.vpt.model` (the model and ``create_model``), :mod:`~frpt.vpt.vit_weights` (backbones and
their weights), :mod:`~frpt.vpt.prompts`, :mod:`~frpt.vpt.numerics` (explicit-precision ViT blocks for
export), :mod:`~frpt.vpt.proxies` (semantic proxies), :mod:`~frpt.vpt.loss` (Proxy-Anchor),
:mod:`~frpt.vpt.sampler`, :mod:`~frpt.vpt.augment`, :mod:`~frpt.vpt.recipes`, :mod:`~frpt.vpt.train`,
:mod:`~frpt.vpt.checkpoint`. The config is torch-free: :class:`frpt_runtime.families.vpt.VPTConfig`.
"""

from frpt.vpt.model import VPTModel, create_model

__all__ = ["VPTModel", "create_model"]
