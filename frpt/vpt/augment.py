"""Training images for the VPT family: RandomResizedCrop + horizontal flip (the authors' ``base`` augmentation).

Each image is decoded once by the runtime's decoder (:func:`frpt_runtime.images.load_image`) to a square
of side ``round(input_size / crop_pct)`` (shorter side resized, centre-cropped; cached), then every
access draws a random crop of ``scale`` of its area and ``ratio`` aspect, resized to ``input_size``
(bilinear, antialiased) and flipped with probability 1/2. Randomness is torch's global generator, so a
seeded run in one process is reproducible. Evaluation uses the runtime's resize + centre crop
(``frpt.datasets.ImageListDataset``), the authors' Resize 256 + CenterCrop 224 at ``crop_pct = 0.875``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from frpt.dataset_layouts import RetrievalSplit
from frpt.datasets import ImageListDataset

__all__ = ["DEFAULT_RATIO", "DEFAULT_SCALE", "RandomResizedCropImages"]

DEFAULT_SCALE = (0.08, 1.0)
DEFAULT_RATIO = (3 / 4, 4 / 3)


class RandomResizedCropImages(Dataset):
    """Item ``i`` is ``(uint8 [S, S, 3] tensor, label)``, randomly cropped and flipped.

    Args:
        split: paths and labels.
        size: model input side ``S``.
        crop_pct: the model's centre-crop fraction (sets the decoded side ``round(S / crop_pct)``).
        scale: crop area fraction range (torchvision's default, as the authors').
        ratio: crop aspect ratio range.
        hflip: random horizontal flips.
        decoder: the model config's ``decoder`` (``exact`` | ``fast``, as the runtime).
    """

    def __init__(
        self,
        split: RetrievalSplit,
        size: int,
        crop_pct: float,
        scale: tuple[float, float] = DEFAULT_SCALE,
        ratio: tuple[float, float] = DEFAULT_RATIO,
        hflip: bool = True,
        decoder: str = "exact",
    ) -> None:
        from torchvision.transforms import v2

        self.split = split
        self.base = ImageListDataset(
            split, max(size, round(size / crop_pct)), 1.0, hflip=False, cache=True, decoder=decoder
        )
        self.crop = v2.RandomResizedCrop(size, scale=scale, ratio=ratio, antialias=True)
        self.hflip = hflip

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        pixels, label = self.base[i]
        chw = self.crop(pixels.permute(2, 0, 1))
        if self.hflip and torch.rand(()) < 0.5:
            chw = chw.flip(-1)
        return chw.permute(1, 2, 0).contiguous(), label
