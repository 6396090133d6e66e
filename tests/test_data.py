"""Dataset layouts (fabricated miniature CUB / Cars / Aircraft / ImageFolder) and the synthetic generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from frpt.dataset_layouts import detect_layout, load_split
from frpt.datasets import ImageListDataset
from frpt.synthetic import (
    CRESTS,
    TAILS,
    WING_MARKS,
    SyntheticSpec,
    class_names,
    generate_synthetic,
    render_bird,
    split_of,
)
from frpt_runtime.errors import FrptError


def _png(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 10), (value, value, value)).save(path)
    return path


def test_cub_layout(tmp_path: Path) -> None:
    names = ["001.Albatross", "002.Auklet", "003.Blackbird", "004.Bobolink"]
    (tmp_path / "classes.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(names, 1)))
    images, labels = [], []
    for k in range(8):
        label = k // 2 + 1
        rel = f"{names[label - 1]}/img_{k}.jpg"
        _png(tmp_path / "images" / rel, 10 * k)
        images.append(f"{k + 1} {rel}\n")
        labels.append(f"{k + 1} {label}\n")
    (tmp_path / "images.txt").write_text("".join(images))
    (tmp_path / "image_class_labels.txt").write_text("".join(labels))
    assert detect_layout(tmp_path) == "cub"
    train, test = load_split(tmp_path, "train"), load_split(tmp_path, "test")
    assert train.classes == tuple(names[:2]) and test.classes == tuple(names[2:])
    assert train.labels == (0, 0, 1, 1) and test.labels == (0, 0, 1, 1)
    assert [p.name for p in test.paths] == ["img_4.jpg", "img_5.jpg", "img_6.jpg", "img_7.jpg"]
    pixels, label = ImageListDataset(test, 8, 1.0)[3]
    assert pixels.shape == (8, 8, 3) and pixels.dtype == torch.uint8 and label == 1
    assert int(pixels[4, 4, 0]) == 70


def _struct(records: list[dict]) -> np.ndarray:
    dtype = [(k, object) for k in records[0]]
    arr = np.zeros((1, len(records)), dtype=dtype)
    for i, r in enumerate(records):
        for k, v in r.items():
            arr[0, i][k] = v
    return arr


def test_cars_annos_layout(tmp_path: Path) -> None:
    from scipy.io import savemat

    records = []
    for k in range(8):
        cls = k % 4 + 1
        _png(tmp_path / "car_ims" / f"{k:06d}.jpg", k)
        records.append(
            {
                "relative_im_path": f"car_ims/{k:06d}.jpg",
                "class": np.array([[cls]], dtype=np.uint8),
                "test": np.array([[k % 2]]),
            }
        )
    names = np.array([["AM General Hummer"], ["Acura RL"], ["BMW M3"], ["Audi TT"]], dtype=object)
    savemat(tmp_path / "cars_annos.mat", {"annotations": _struct(records), "class_names": names.T})
    assert detect_layout(tmp_path) == "cars"
    train, test = load_split(tmp_path, "train"), load_split(tmp_path, "test")
    assert train.classes == ("001_AM General Hummer", "002_Acura RL")
    assert test.classes == ("003_BMW M3", "004_Audi TT")
    assert len(train) == 4 and len(test) == 4
    assert [p.name for p, label in zip(test.paths, test.labels, strict=True) if label == 1] == [
        "000003.jpg",
        "000007.jpg",
    ]


def test_cars_devkit_layout(tmp_path: Path) -> None:
    from scipy.io import savemat

    (tmp_path / "devkit").mkdir()
    for annos, folder, offset in (
        ("cars_train_annos.mat", "cars_train", 0),
        ("cars_test_annos_withlabels.mat", "cars_test", 4),
    ):
        recs = []
        for k in range(4):
            _png(tmp_path / folder / f"{k + offset:05d}.jpg", k)
            recs.append({"fname": f"{k + offset:05d}.jpg", "class": np.array([[k + 1]], dtype=np.uint8)})
        savemat(tmp_path / "devkit" / annos, {"annotations": _struct(recs)})
    savemat(
        tmp_path / "devkit" / "cars_meta.mat", {"class_names": np.array([["a"], ["b"], ["c"], ["d"]], dtype=object).T}
    )
    test = load_split(tmp_path, "test")
    assert test.classes == ("003_c", "004_d")
    assert [p.relative_to(tmp_path).as_posix() for p in test.paths] == [
        "cars_train/00002.jpg",
        "cars_train/00003.jpg",
        "cars_test/00006.jpg",
        "cars_test/00007.jpg",
    ]


def test_aircraft_layout(tmp_path: Path) -> None:
    data = tmp_path / "fgvc-aircraft-2013b" / "data"
    variants = ["707-320", "A300B4", "Cessna 172", "F-16A/B"]
    data.mkdir(parents=True)
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    lines = {"trainval": [], "test": []}
    for k in range(8):
        image_id = f"{1000000 + k}"
        _png(data / "images" / f"{image_id}.jpg", k)
        lines["trainval" if k < 5 else "test"].append(f"{image_id} {variants[k % 4]}\n")
    for part, rows in lines.items():
        (data / f"images_variant_{part}.txt").write_text("".join(rows))
    root = tmp_path / "fgvc-aircraft-2013b"
    assert detect_layout(root) == "aircraft" and detect_layout(data) == "aircraft"
    test = load_split(root, "test")
    assert test.classes == ("Cessna 172", "F-16A/B")
    assert [(p.stem, label) for p, label in zip(test.paths, test.labels, strict=True)] == [
        ("1000002", 0),
        ("1000003", 1),
        ("1000006", 0),
        ("1000007", 1),
    ]


def test_imagefolder_and_errors(tmp_path: Path) -> None:
    for c in ("b", "a"):
        for k in range(2):
            _png(tmp_path / "flat" / c / f"{k}.png", k)
    split = load_split(tmp_path / "flat", "test")
    assert split.classes == ("a", "b") and split.labels == (0, 0, 1, 1)
    with pytest.raises(FrptError, match="not found"):
        load_split(tmp_path / "absent", "train")
    with pytest.raises(FrptError, match="split"):
        load_split(tmp_path / "flat", "val")
    (tmp_path / "flat" / "a" / "0.png").write_bytes(b"not a png")
    with pytest.raises(FrptError, match="0.png"):
        ImageListDataset(split, 8, 1.0)[0]


def test_synthetic_generator_deterministic_and_split(tmp_path: Path) -> None:
    spec = SyntheticSpec(image_size=48, train_per_class=1, test_per_class=1, seed=3)
    classes = generate_synthetic(tmp_path / "a", spec)
    generate_synthetic(tmp_path / "b", spec)
    assert len(classes["train"]) == len(classes["test"]) == 36
    assert not set(classes["train"]) & set(classes["test"])
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert len(files_a) == 72
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files_a)
    other = generate_synthetic(
        tmp_path / "c", SyntheticSpec(image_size=48, train_per_class=1, test_per_class=1, seed=4)
    )
    assert other == classes
    assert (tmp_path / "a" / files_a[0]).read_bytes() != (tmp_path / "c" / files_a[0]).read_bytes()
    # every crest, wing mark and tail pattern occurs in both splits
    for split in ("train", "test"):
        for position, vocabulary in enumerate((CRESTS, WING_MARKS, TAILS)):
            assert {name.split("-")[position] for name in classes[split]} == set(vocabulary)
    assert [split_of(parts) for _, parts in class_names()].count("train") == 36
    assert detect_layout(tmp_path / "a") == "split-folders"
    assert load_split(tmp_path / "a", "test").classes == tuple(sorted(classes["test"]))


def test_synthetic_classes_differ_only_in_details() -> None:
    # same nuisance draw (same rng seed), different classes: the images differ only in a small area
    base = np.asarray(render_bird((0, 0, 0), np.random.default_rng(7), 96), dtype=np.int16)
    for parts in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
        other = np.asarray(render_bird(parts, np.random.default_rng(7), 96), dtype=np.int16)
        changed = (np.abs(other - base).sum(axis=2) > 0).mean()
        assert 0.001 < changed < 0.05, (parts, changed)
