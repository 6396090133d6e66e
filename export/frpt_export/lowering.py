"""ONNX lowerings of FRPT's submodules, swapped into a copy of the model for export (:mod:`.families.frpt`).

docs/design.md §5: the standard lowering expresses every fixed-size linear step as a MatMul with a constant
matrix (exact, and identical on ONNX Runtime and TensorRT, unlike bilinear ``Resize`` — NVIDIA/TensorRT#273),
then one ``GridSample`` (opset >= 16; opset 17 because opset 20 renamed its mode, NVIDIA/TensorRT#4646).
The plugin lowering replaces the whole structure modification by one ``frpt::InhomogeneousSample`` node.
The constant matrices come from :mod:`frpt_runtime.sampling_matrices` (float64, cast to float32 here).

Each module replaces the model's submodule of the same role with the same signature:

* :class:`MatMulSaliencyMap` for ``model.saliency``: logits ``[N, 1, h, w]`` -> softmax saliency
  ``[N, 1, g, g]`` float32 (bilinear align_corners=True resize as two MatMuls, then the softmax);
* :class:`MatMulSampler` / :class:`PluginSampler` for ``model.sampler``: ``(image [N, C, H, W],
  saliency [N, 1, g, g]) -> [N, C, H, W]`` float32;
* :class:`OnnxInstanceNorm` for ``model.cah.norm``: one ``InstanceNormalization`` node (the model writes the
  statistics out by hand, which would export as a ReduceMean/Sub/Mul chain);
* :class:`HalfBackbone` for ``model.backbone`` in fp16 graphs: the full pass in half between two Casts, the
  saliency pass in float32 or half;
* :class:`StaticPadConv2d` for each of timm's TF-"same" :class:`~timm.layers.Conv2dSame` inside the backbone
  (:func:`static_same_padding`): the padding timm computes from the input's shape at run time (traced as a
  Shape/Gather/Ceil/Clip/Pad subgraph per convolution, 18 of them on EfficientNet-Lite0) is fixed at the model's
  input size, and the convolution exports as one ``Conv`` node with asymmetric ``pads``. timm's own export form
  (``Conv2dSameExport``, behind ``set_layer_config(exportable=True)`` and a private module flag that timm 1.0.31
  leaves off) pads with ``nn.ZeroPad2d``, which the TorchScript exporter still traces as a
  ConstantOfShape/Concat/Reshape/Slice/Transpose subgraph per convolution (its reversed Slice is not folded).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from timm.layers import Conv2dSame, get_same_padding
from torch import Tensor, nn

from frpt.cah import IN_EPS
from frpt.sampling import inhomogeneous_sample
from frpt_runtime.contract import PLUGIN_DOMAIN, PLUGIN_NAMESPACE, PLUGIN_OP, PLUGIN_VERSION, Lowering
from frpt_runtime.sampling_matrices import bilinear_resize_matrix, blur_matrices

__all__ = [
    "HalfBackbone",
    "MatMulSaliencyMap",
    "MatMulSampler",
    "OnnxInstanceNorm",
    "PluginSampler",
    "StaticPadConv2d",
    "make_sampler",
    "static_same_padding",
]


def _constant(matrix) -> Tensor:
    """A float64 numpy matrix as a contiguous float32 tensor."""
    return torch.from_numpy(matrix).float().contiguous()


class MatMulSaliencyMap(nn.Module):
    """Saliency logits to a softmax-normalised ``g x g`` map with constant MatMuls.

    Args:
        in_hw: the tap's spatial size ``(h, w)`` (fixed by the model's input size).
        grid: ``g``.

    Shapes: ``[N, 1, h, w]`` float -> ``[N, 1, g, g]`` float32.
    """

    def __init__(self, in_hw: tuple[int, int], grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.register_buffer("rh", _constant(bilinear_resize_matrix(in_hw[0], grid, True)), persistent=False)
        self.register_buffer("rwt", _constant(bilinear_resize_matrix(in_hw[1], grid, True).T), persistent=False)

    def forward(self, logits: Tensor) -> Tensor:
        resized = self.rh @ logits.float() @ self.rwt  # [N, 1, g, g]
        flat = torch.softmax(resized.flatten(1), dim=1)
        return flat.view(-1, 1, self.grid, self.grid)


class MatMulSampler(nn.Module):
    """Standard lowering of :func:`frpt.sampling.inhomogeneous_sample` (float32 throughout).

    The grid is :func:`frpt_runtime.sampling_matrices.sampling_grid`'s matrix form: ``clamp(M A D^T / den)``
    and ``clamp(D A M^T / den)`` with ``den = M A M^T`` and ``D = 2 Mc - M``, upsampled by ``R_h G R_w^T``
    (align_corners=False), then ``GridSample(bilinear, zeros, align_corners=True)``.

    Args:
        grid, pad, fwhm: DPP geometry (``g``, ``p``, FWHM).
        out_hw: output ``(H, W)`` (the model's input size).

    Shapes: ``image [N, C, H, W]`` float, ``saliency [N, 1, g, g]`` float32 -> ``[N, C, H, W]`` float32.
    """

    def __init__(self, grid: int, pad: int, fwhm: float, out_hw: tuple[int, int]) -> None:
        super().__init__()
        m, mc = blur_matrices(grid, pad, fwhm)
        d = 2.0 * mc - m
        self.register_buffer("m", _constant(m), persistent=False)
        self.register_buffer("mt", _constant(m.T), persistent=False)
        self.register_buffer("d", _constant(d), persistent=False)
        self.register_buffer("dt", _constant(d.T), persistent=False)
        self.register_buffer("uh", _constant(bilinear_resize_matrix(grid, out_hw[0], False)), persistent=False)
        self.register_buffer("uwt", _constant(bilinear_resize_matrix(grid, out_hw[1], False).T), persistent=False)

    def grid(self, saliency: Tensor) -> Tensor:
        """``[N, 1, g, g]`` saliency -> ``[N, H, W, 2]`` float32 sampling grid ``(x, y)`` in ``[-1, 1]``."""
        a = saliency.float()[:, 0]  # [N, g, g]
        ma = self.m @ a
        den = ma @ self.mt
        gx = torch.clamp((ma @ self.dt) / den, -1.0, 1.0)
        gy = torch.clamp((self.d @ a @ self.mt) / den, -1.0, 1.0)
        return torch.stack((self.uh @ gx @ self.uwt, self.uh @ gy @ self.uwt), dim=-1)

    def forward(self, image: Tensor, saliency: Tensor) -> Tensor:
        grid = self.grid(saliency)
        return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)


class _InhomogeneousSample(torch.autograd.Function):
    """Eager: the reference function. Export: one ``frpt::InhomogeneousSample`` node (docs/design.md §5)."""

    @staticmethod
    def forward(ctx, image: Tensor, saliency: Tensor, out_h: int, out_w: int, pad: int, fwhm: float) -> Tensor:
        return inhomogeneous_sample(image, saliency, (out_h, out_w), pad, fwhm)

    @staticmethod
    def symbolic(g, image, saliency, out_h: int, out_w: int, pad: int, fwhm: float):
        out = g.op(
            f"{PLUGIN_DOMAIN}::{PLUGIN_OP}",
            image,
            saliency,
            out_h_i=out_h,
            out_w_i=out_w,
            pad_i=pad,
            fwhm_f=fwhm,
            align_corners_i=1,
            plugin_version_s=PLUGIN_VERSION,
            plugin_namespace_s=PLUGIN_NAMESPACE,
        )
        sizes = image.type().varyingSizes()
        channels = sizes[1] if sizes else None
        out.setType(image.type().with_sizes([None, channels, out_h, out_w]))
        return out


class PluginSampler(nn.Module):
    """Plugin lowering: exported as the single custom node; eager forward = the reference function.

    Shapes: ``image [N, C, H, W]`` float, ``saliency [N, 1, g, g]`` float32 -> ``[N, C, out_h, out_w]``
    with the image's dtype.
    """

    def __init__(self, pad: int, fwhm: float, out_hw: tuple[int, int]) -> None:
        super().__init__()
        self.pad, self.fwhm, self.out_hw = int(pad), float(fwhm), (int(out_hw[0]), int(out_hw[1]))

    def forward(self, image: Tensor, saliency: Tensor) -> Tensor:
        return _InhomogeneousSample.apply(image, saliency.float(), *self.out_hw, self.pad, self.fwhm)


class OnnxInstanceNorm(nn.Module):
    """Parameter-free InstanceNorm as ``F.instance_norm`` (one ONNX node): ``[N, C, h, w]`` float32 -> same."""

    def forward(self, features: Tensor) -> Tensor:
        return F.instance_norm(features, eps=IN_EPS)


class HalfBackbone(nn.Module):
    """fp16 graph's backbone: ``forward_features`` in half between Casts; ``forward_tap`` in half or float32.

    Args:
        backbone: the trained (float32) backbone; it is copied, not changed.
        half_tap: run the saliency pass (up to the tap) in half too.

    Shapes: ``forward_features`` float32 ``[N, 3, S, S]`` -> float32 feature map; ``forward_tap`` float32 ``[N, 3,
    S, S]`` -> the tap in half (``half_tap``) or float32.
    """

    def __init__(self, backbone: nn.Module, half_tap: bool) -> None:
        super().__init__()
        self.half_backbone = copy.deepcopy(backbone).half()
        self.tap_backbone = self.half_backbone if half_tap else backbone
        self.tap_dtype = torch.float16 if half_tap else torch.float32

    def forward_tap(self, x: Tensor) -> Tensor:
        return self.tap_backbone.forward_tap(x.to(self.tap_dtype))

    def forward_features(self, x: Tensor) -> Tensor:
        return self.half_backbone.forward_features(x.to(torch.float16)).float()


def make_sampler(lowering: Lowering, grid: int, pad: int, fwhm: float, out_hw: tuple[int, int]) -> nn.Module:
    """The sampler module for ``lowering``."""
    if lowering == Lowering.standard:
        return MatMulSampler(grid, pad, fwhm, out_hw)
    return PluginSampler(pad, fwhm, out_hw)


class _PaddedConv(torch.autograd.Function):
    """Eager: zero padding then ``conv2d``. Export: one ONNX ``Conv`` whose ``pads`` hold the (asymmetric) padding."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, conv: StaticPadConv2d) -> Tensor:
        return F.conv2d(F.pad(x, conv.pads), weight, bias, conv.stride, 0, conv.dilation, conv.groups)

    @staticmethod
    def symbolic(g, x, weight, bias, conv: StaticPadConv2d):
        left, right, top, bottom = conv.pads
        inputs = (x, weight) if bias is None else (x, weight, bias)
        return g.op(
            "Conv",
            *inputs,
            kernel_shape_i=list(conv.kernel_size),
            pads_i=[top, left, bottom, right],
            strides_i=list(conv.stride),
            dilations_i=list(conv.dilation),
            group_i=conv.groups,
        )


class StaticPadConv2d(nn.Conv2d):
    """A TF-"same" convolution whose padding is fixed for one input size (the export form of ``Conv2dSame``).

    Args:
        conv: the ``Conv2dSame`` to replace (weights are copied, the original is not changed).
        input_hw: the spatial size of the input it sees at the model's input size.

    Shapes: ``[N, C_in, h, w]`` (``(h, w) == input_hw``) -> ``[N, C_out, ceil(h / s), ceil(w / s)]``, any float dtype.
    """

    def __init__(self, conv: nn.Conv2d, input_hw: tuple[int, int]) -> None:
        groups, bias = conv.groups, conv.bias is not None
        super().__init__(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0, conv.dilation, groups, bias
        )
        self.load_state_dict(conv.state_dict())
        self.to(conv.weight.dtype).requires_grad_(False)
        pad_h, pad_w = (
            get_same_padding(size, kernel, stride, dilation)
            for size, kernel, stride, dilation in zip(
                input_hw, conv.kernel_size, conv.stride, conv.dilation, strict=True
            )
        )
        self.input_hw = tuple(input_hw)
        self.pads = (
            pad_w // 2,
            pad_w - pad_w // 2,
            pad_h // 2,
            pad_h - pad_h // 2,
        )  # F.pad order: left, right, top, bottom

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != self.input_hw:
            raise ValueError(f"padding fixed for a {self.input_hw} input, got {tuple(x.shape[-2:])}")
        return _PaddedConv.apply(x, self.weight, self.bias, self)


def static_same_padding(module: nn.Module, run: Callable[[], object]) -> int:
    """Swap every ``Conv2dSame`` inside ``module`` for a :class:`StaticPadConv2d` at the sizes ``run()`` shows it.

    Args:
        module: changed in place (pass the export copy, never the trained model).
        run: one forward pass at the model's input size (e.g. ``forward_features`` on a zero image).

    Returns:
        How many convolutions were swapped.

    Raises:
        ValueError: a convolution ``run`` gave two input sizes, or never reached (its padding cannot be fixed).
    """
    seen: dict[str, set[tuple[int, int]]] = {}
    convs = {name: conv for name, conv in module.named_modules() if isinstance(conv, Conv2dSame)}

    def record(name: str) -> Callable[..., None]:
        return lambda _module, args: seen.setdefault(name, set()).add(tuple(args[0].shape[-2:]))

    hooks = [conv.register_forward_pre_hook(record(name)) for name, conv in convs.items()]
    try:
        with torch.no_grad():
            run()
    finally:
        for hook in hooks:
            hook.remove()
    for name, conv in convs.items():
        sizes = seen.get(name, set())
        if len(sizes) != 1:
            raise ValueError(f"{name}: cannot fix its padding, the probe pass gave input sizes {sorted(sizes)}")
        parent, _, child = name.rpartition(".")
        setattr(module.get_submodule(parent), child, StaticPadConv2d(conv, sizes.pop()))
    return len(convs)
