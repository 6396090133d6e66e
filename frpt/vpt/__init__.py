"""The VPT semantic-proxy model family (Ren et al., ICLR 2024; docs/design.md §4b).

Modules: :mod:`~frpt.vpt.model` (the model and ``create_model``, registered in :data:`frpt.families.FACTORIES`),
:mod:`~frpt.vpt.vit_weights` (backbones and their weights), :mod:`~frpt.vpt.prompts`, :mod:`~frpt.vpt.proxies`
(semantic proxies), :mod:`~frpt.vpt.loss` (Proxy-Anchor), :mod:`~frpt.vpt.sampler`, :mod:`~frpt.vpt.augment`,
:mod:`~frpt.vpt.recipes` (the paper's per-dataset settings, torch-free), :mod:`~frpt.vpt.train` and
:mod:`~frpt.vpt.train_job` (``frpt-train --family vpt``). Importing the package stays torch-free; the config is the
runtime's (:class:`frpt_runtime.families.vpt.VPTConfig`).
"""
