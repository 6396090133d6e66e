"""Decoded retrieval splits for PyTorch: :class:`ImageListDataset`, through the runtime's one image decoder.

Every image is decoded by :func:`frpt_runtime.images.load_image`, exactly as the runtime decodes it, so PyTorch
and every backend see identical uint8 pixels. Splits come from :mod:`frpt.dataset_layouts`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from frpt.dataset_layouts import RetrievalSplit
from frpt_runtime.errors import FrptError
from frpt_runtime.images import ImageDecodeError, load_image

__all__ = ["ImageListDataset"]


class ImageListDataset(Dataset):
    """Decoded images of a split: item ``i`` is ``(uint8 [S, S, 3] tensor, label)``.

    Args:
        split: paths and labels.
        size: model input side ``S``.
        crop_pct: centre-crop fraction (as the runtime).
        decoder: the model config's ``decoder`` (``exact`` | ``fast``, as the runtime).
        hflip: randomly mirror images (training augmentation; the generator is torch's global one).
        cache: keep decoded images in memory after the first read (small datasets, several epochs).
    """

    def __init__(
        self,
        split: RetrievalSplit,
        size: int,
        crop_pct: float,
        hflip: bool = False,
        cache: bool = True,
        decoder: str = "exact",
    ) -> None:
        self.split = split
        self.size = size
        self.crop_pct = crop_pct
        self.decoder = decoder
        self.hflip = hflip
        self._cache: dict[int, np.ndarray] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.split)

    def _decode(self, i: int) -> np.ndarray:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        path = self.split.paths[i]
        try:
            pixels = load_image(path, self.size, self.crop_pct, self.decoder)
        except ImageDecodeError as exc:
            raise FrptError(f"{path}: {exc}") from None
        if self._cache is not None:
            self._cache[i] = pixels
        return pixels

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        pixels = torch.from_numpy(self._decode(i).copy())  # decoded arrays are read-only
        if self.hflip and torch.rand(()) < 0.5:
            pixels = pixels.flip(1)
        return pixels, self.split.labels[i]
