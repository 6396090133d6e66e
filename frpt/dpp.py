"""DPP, the discriminative perturbation prompt: content parsing + structure modification (docs/design.md §4).

Provenance: FRPT (Wang et al., AAAI 2023), §3.2 "Discriminative Perturbation Prompt"; released code
``fastreid/modeling/meta_arch`` (saliency sampler after Recasens et al., ECCV 2018).

* Content parsing turns a backbone tap ``[N, C, h, w]`` into saliency logits ``[N, 1, h, w]``:
  ``released`` variant (default): ReLU then a 1x1 conv (tap at stride 16);
  ``paper`` variant: a ``sigma x sigma`` content-aware conv with 'same' padding (tap at stride 4).
* :func:`saliency_from_logits` resizes the logits to ``g x g`` (bilinear, align_corners=True) and takes a
  softmax over the ``g^2`` cells: saliency ``A`` ``[N, 1, g, g]`` float32, summing to 1 per image
  (:class:`SaliencyMap` is the module the model holds, so the exporter can swap in its MatMul form).
* Structure modification resamples the image from ``A``: :class:`ReferenceSampler` wraps the pure
  reference :func:`frpt.sampling.inhomogeneous_sample` (the exporter swaps the sampler for a lowering).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from frpt.sampling import inhomogeneous_sample
from frpt_runtime.families.frpt import DPP_VARIANTS

__all__ = ["ContentParser", "ReferenceSampler", "SaliencyMap", "saliency_from_logits"]


class ContentParser(nn.Module):
    """Saliency logits from a backbone tap.

    The conv starts at zero, so an untrained model sees a uniform saliency map (a near-identity warp).

    Args:
        in_channels: tap channels ``C``.
        variant: ``released`` (ReLU + 1x1 conv) or ``paper`` (``kernel x kernel`` conv, 'same' padding).
        kernel: the paper variant's kernel side ``sigma`` (odd).
    """

    def __init__(self, in_channels: int, variant: str, kernel: int = 31) -> None:
        super().__init__()
        if variant not in DPP_VARIANTS:
            raise ValueError(f"DPP variant must be one of {DPP_VARIANTS}, got {variant!r}")
        if variant == "paper" and kernel % 2 == 0:
            raise ValueError(f"paper kernel must be odd for 'same' padding, got {kernel}")
        self.variant = variant
        self.act = nn.ReLU() if variant == "released" else nn.Identity()
        size = 1 if variant == "released" else kernel
        self.conv = nn.Conv2d(in_channels, 1, size, padding=size // 2)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, tap: Tensor) -> Tensor:
        """``[N, C, h, w]`` float -> saliency logits ``[N, 1, h, w]``."""
        return self.conv(self.act(tap))


def saliency_from_logits(logits: Tensor, g: int) -> Tensor:
    """Saliency map ``A`` from content-parsing logits.

    Args:
        logits: ``[N, 1, h, w]`` float (any float dtype).
        g: grid side.

    Returns:
        ``[N, 1, g, g]`` float32, softmax over the ``g^2`` cells (each map sums to 1).
    """
    grid = F.interpolate(logits.float(), size=(g, g), mode="bilinear", align_corners=True)
    n = grid.shape[0]
    return F.softmax(grid.reshape(n, -1), dim=1).reshape(n, 1, g, g)


class SaliencyMap(nn.Module):
    """:func:`saliency_from_logits` as a module: ``[N, 1, h, w]`` float logits -> ``[N, 1, g, g]`` float32.

    Args:
        grid: ``g``.
    """

    def __init__(self, grid: int) -> None:
        super().__init__()
        self.grid = grid

    def forward(self, logits: Tensor) -> Tensor:
        return saliency_from_logits(logits, self.grid)

    def extra_repr(self) -> str:
        return f"grid={self.grid}"


class ReferenceSampler(nn.Module):
    """Structure modification by the pure reference :func:`frpt.sampling.inhomogeneous_sample`.

    Args:
        pad: replication padding in grid cells.
        fwhm: Gaussian FWHM in grid cells.
    """

    def __init__(self, pad: int = 30, fwhm: float = 13.0) -> None:
        super().__init__()
        self.pad = pad
        self.fwhm = fwhm

    def forward(self, image: Tensor, saliency: Tensor) -> Tensor:
        """``image [N, C, H, W]``, ``saliency [N, 1, g, g]`` float32 -> resampled ``[N, C, H, W]`` (image dtype).

        The grid is computed in float32 even under autocast (docs/design.md §5: the grid stays float32).
        """
        with torch.autocast(image.device.type, enabled=False):
            return inhomogeneous_sample(image, saliency.float(), tuple(image.shape[-2:]), self.pad, self.fwhm)

    def extra_repr(self) -> str:
        return f"pad={self.pad}, fwhm={self.fwhm}"
