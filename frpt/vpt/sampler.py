"""Class-balanced batches: ``batch_size // k`` distinct classes, ``k`` samples each (the authors' sampler).

Provenance: released code ``datasampler/class_random_sampler.py`` (facts only). The semantic-proxy
container update needs ``k >= 2`` samples of a class in a batch; Proxy-Anchor benefits from many
classes per batch. Per batch: classes drawn without replacement; per class ``k`` distinct images when it
has that many, otherwise all of them plus repeats (augmentation makes repeats differ). Batches are laid
out class by class (``k`` consecutive indices). An epoch is ``len(labels) // batch_size`` batches (at
least one). Deterministic for a seed: one numpy generator, consumed epoch after epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from frpt_runtime.errors import FrptError

__all__ = ["ClassBalancedBatchSampler", "check_batch_layout"]


def check_batch_layout(batch_size: int, samples_per_class: int) -> None:
    """Refuse a batch layout the sampler cannot build (checked before any data is read or generated).

    Raises:
        FrptError: ``batch_size`` not a positive multiple of ``samples_per_class``.
    """
    if samples_per_class < 1 or batch_size < samples_per_class or batch_size % samples_per_class:
        raise FrptError(
            f"--batch-size {batch_size} must be a positive multiple of --samples-per-class {samples_per_class}"
        )


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices (use as a DataLoader ``batch_sampler``).

    Args:
        labels: class label of every dataset item.
        batch_size: indices per batch (a multiple of ``samples_per_class``).
        samples_per_class: ``k``.
        seed: generator seed.

    Raises:
        FrptError: ``batch_size`` not a multiple of ``k``, or fewer classes than ``batch_size // k``.
    """

    def __init__(self, labels: Sequence[int], batch_size: int = 64, samples_per_class: int = 2, seed: int = 0) -> None:
        check_batch_layout(batch_size, samples_per_class)
        labels = np.asarray(labels, dtype=np.int64)
        classes = np.unique(labels)
        self.classes_per_batch = batch_size // samples_per_class
        if len(classes) < self.classes_per_batch:
            raise FrptError(
                f"a batch of {batch_size} with {samples_per_class} per class needs {self.classes_per_batch} classes, "
                f"the data has {len(classes)}: lower --batch-size"
            )
        self.batch_size = batch_size
        self.samples_per_class = samples_per_class
        self.by_class = {int(c): np.flatnonzero(labels == c) for c in classes}
        self.num_batches = max(len(labels) // batch_size, 1)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.num_batches

    def _draw(self, members: np.ndarray) -> np.ndarray:
        k = self.samples_per_class
        if len(members) >= k:
            return self.rng.choice(members, size=k, replace=False)
        repeats = np.concatenate(
            [np.tile(members, k // len(members)), self.rng.choice(members, size=k % len(members), replace=False)]
        )
        return self.rng.permutation(repeats)

    def __iter__(self) -> Iterator[list[int]]:
        keys = np.array(sorted(self.by_class))
        for _ in range(self.num_batches):
            chosen = self.rng.choice(keys, size=self.classes_per_batch, replace=False)
            yield [int(i) for c in chosen for i in self._draw(self.by_class[int(c)])]
