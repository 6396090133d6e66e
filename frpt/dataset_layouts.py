"""Retrieval datasets' on-disk layouts -> splits of image paths and labels (torch-free).

Splits follow the standard fine-grained retrieval protocol: the first half of the classes train, the
second half test, classes disjoint.

* **ImageFolder** -- ``root/<class>/<image>``; with ``root/train`` and ``root/test`` subfolders (the
  synthetic set) each split is its own ImageFolder, otherwise the folder itself is the split.
* **CUB-200-2011** -- ``images.txt`` (``<id> <relpath>``), ``image_class_labels.txt`` (``<id> <label>``),
  ``images/``; labels 1-100 train, 101-200 test. Class names come from ``classes.txt`` when present.
* **Stanford Cars-196** -- ``cars_annos.mat`` (``annotations`` with ``relative_im_path`` and ``class``,
  ``class_names``) or the devkit layout (``devkit/cars_train_annos.mat``, ``devkit/cars_test_annos_withlabels.mat``
  with ``fname``/``class``, ``devkit/cars_meta.mat``, images in ``cars_train/`` and ``cars_test/``); classes
  1-98 train, 99-196 test, images of both original splits used.
* **FGVC-Aircraft** (variant level) -- ``data/variants.txt`` (100 names in order) and
  ``data/images_variant_{train,val,trainval,test}.txt`` (``<image id> <variant name>``), images
  ``data/images/<id>.jpg``; the root may be the ``fgvc-aircraft-2013b`` folder or its ``data`` folder.
  First 50 variants train, last 50 test.

Decoding is :class:`frpt.datasets.ImageListDataset`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frpt_runtime.errors import FrptError
from frpt_runtime.image_files import list_images

__all__ = ["SPLITS", "RetrievalSplit", "detect_layout", "load_split"]

SPLITS = ("train", "test")


@dataclass(frozen=True)
class RetrievalSplit:
    """One split: image paths, labels ``0..len(classes)-1`` and the class names."""

    paths: tuple[Path, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)


def _split_from_items(items: list[tuple[Path, str]], classes: list[str]) -> RetrievalSplit:
    """Keep the items whose class is in ``classes`` (ordered) and number the labels densely."""
    index = {c: i for i, c in enumerate(classes)}
    kept = [(p, index[c]) for p, c in items if c in index]
    if not kept:
        raise FrptError(f"no images found for classes {classes[:3]}...; check the dataset folder")
    return RetrievalSplit(tuple(p for p, _ in kept), tuple(label for _, label in kept), tuple(classes))


def _halves(classes: list[str], split: str) -> list[str]:
    half = len(classes) // 2
    return classes[:half] if split == "train" else classes[half:]


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    """Lines ``<key> <value with spaces>`` of a text file."""
    if not path.is_file():
        raise FrptError(f"dataset file missing: {path}")
    pairs = []
    for line in path.read_text().splitlines():
        if line.strip():
            key, _, value = line.strip().partition(" ")
            pairs.append((key, value.strip()))
    return pairs


def _image_folder(root: Path) -> RetrievalSplit:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise FrptError(f"{root} has no class subfolders (ImageFolder layout: {root}/<class>/<image>)")
    items = [(p, c) for c in classes for p in list_images(root / c)]
    return _split_from_items(items, classes)


def _cub(root: Path, split: str) -> RetrievalSplit:
    paths = dict(_read_pairs(root / "images.txt"))
    labels = dict(_read_pairs(root / "image_class_labels.txt"))
    names_file = root / "classes.txt"
    names = dict(_read_pairs(names_file)) if names_file.is_file() else {}
    ids = sorted({int(v) for v in labels.values()})
    classes = [names.get(str(i), str(i)) for i in ids]
    by_label = {str(i): c for i, c in zip(ids, classes, strict=True)}
    items = [(root / "images" / paths[k], by_label[str(int(v))]) for k, v in labels.items()]
    return _split_from_items(items, _halves(classes, split))


def _mat_strings(values) -> list[str]:
    return [str(np.asarray(v).ravel()[0]) for v in np.asarray(values).ravel()]


def _cars(root: Path, split: str) -> RetrievalSplit:
    from scipy.io import loadmat

    if (root / "cars_annos.mat").is_file():
        mat = loadmat(root / "cars_annos.mat")
        annos = mat["annotations"].ravel()
        names = _mat_strings(mat["class_names"])
        items = [(root / str(a["relative_im_path"].ravel()[0]), int(a["class"].ravel()[0])) for a in annos]
    else:
        devkit = root / "devkit"
        names = _mat_strings(loadmat(devkit / "cars_meta.mat")["class_names"])
        items = []
        for annos_file, folder in (
            ("cars_train_annos.mat", "cars_train"),
            ("cars_test_annos_withlabels.mat", "cars_test"),
        ):
            for a in loadmat(devkit / annos_file)["annotations"].ravel():
                items.append((root / folder / str(a["fname"].ravel()[0]), int(a["class"].ravel()[0])))
    classes = [f"{i:03d}_{n}" for i, n in enumerate(names, start=1)]
    named = [(p, classes[c - 1]) for p, c in items]
    return _split_from_items(named, _halves(classes, split))


def _aircraft(root: Path, split: str) -> RetrievalSplit:
    data = root / "data" if (root / "data" / "variants.txt").is_file() else root
    classes = [line.strip() for line in (data / "variants.txt").read_text().splitlines() if line.strip()]
    items: dict[str, str] = {}
    for part in ("trainval", "test"):
        items.update(_read_pairs(data / f"images_variant_{part}.txt"))
    named = [(data / "images" / f"{k}.jpg", v) for k, v in sorted(items.items())]
    return _split_from_items(named, _halves(classes, split))


def detect_layout(root: str | Path) -> str:
    """Name the layout of ``root``: ``split-folders``, ``cub``, ``cars``, ``aircraft`` or ``imagefolder``.

    Raises:
        FrptError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FrptError(f"dataset folder not found: {root}")
    if all((root / s).is_dir() for s in SPLITS):
        return "split-folders"
    if (root / "images.txt").is_file() and (root / "image_class_labels.txt").is_file():
        return "cub"
    if (root / "cars_annos.mat").is_file() or (root / "devkit" / "cars_meta.mat").is_file():
        return "cars"
    if (root / "variants.txt").is_file() or (root / "data" / "variants.txt").is_file():
        return "aircraft"
    return "imagefolder"


def load_split(root: str | Path, split: str) -> RetrievalSplit:
    """The ``train`` or ``test`` split of the dataset at ``root`` (layout detected).

    A plain ImageFolder (no ``train``/``test`` subfolders) is used whole for either split.

    Raises:
        FrptError: unknown split, missing folder or files, no images.
    """
    if split not in SPLITS:
        raise FrptError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    layout = detect_layout(root)
    if layout == "split-folders":
        return _image_folder(root / split)
    if layout == "cub":
        return _cub(root, split)
    if layout == "cars":
        return _cars(root, split)
    if layout == "aircraft":
        return _aircraft(root, split)
    return _image_folder(root)
