"""The reference bundle's meta record field by field, its size limit at the bound, and its batching (issue 15).

A bundle whose meta lacks any field, or holds one of the wrong type, is refused in one line naming the field
(it cannot say which model it was made for); the meta string is limited to 2**20 characters, inclusive.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile

import numpy as np
import pytest

from frpt_runtime.bundle import RefBundle, load_bundle, save_bundle, split_rows
from frpt_runtime.contract import Lowering, Precision
from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import FRPTConfig

SIZE = 8
CFG = FRPTConfig(input_size=SIZE, num_classes=3)
META_LIMIT = 1 << 20  # characters of the meta JSON string


def _bundle(batches=(1, 2, 3)) -> RefBundle:
    m = sum(batches)
    rng = np.random.default_rng(1)
    return RefBundle(
        rng.integers(0, 256, (m, SIZE, SIZE, 3), dtype=np.uint8),
        rng.standard_normal((m, 4)).astype(np.float32),
        np.array(batches, np.int64),
        CFG,
        "d" * 64,
        Precision.fp16,
        Lowering.plugin,
    )


def _write_with_meta(path, meta_text: str) -> None:
    """A valid bundle's arrays with ``meta_text`` as its meta string."""
    bundle = _bundle()
    arrays = {"images": bundle.images, "embeddings": bundle.embeddings, "batch_sizes": bundle.batch_sizes}
    with zipfile.ZipFile(path, "w") as archive:
        for key, value in {**arrays, "meta": np.array(meta_text)}.items():
            with archive.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, value)


META_FIELDS = list(_bundle().meta)
BAD_META = [
    ("model_sha256", "D" * 64),
    ("precision", "int8"),
    ("lowering", "tensorrt"),
    ("family", 3),
    ("config", [SIZE]),
    ("thresholds", {"fp16_min_cosine": "high"}),
    ("thresholds", {"no_such_threshold": 0.5}),
    ("toolkit_version", None),
]


def test_a_bundle_round_trips_every_meta_field(tmp_path):
    bundle = _bundle()
    loaded = load_bundle(save_bundle(tmp_path / "m.ref.npz", bundle))
    assert loaded.meta == bundle.meta
    assert (loaded.precision, loaded.lowering, loaded.model_sha256) == (Precision.fp16, Lowering.plugin, "d" * 64)


@pytest.mark.parametrize("name", META_FIELDS)
def test_meta_missing_any_field_is_refused_naming_it(tmp_path, name):
    meta = _bundle().meta
    del meta[name]
    _write_with_meta(tmp_path / "m.ref.npz", json.dumps(meta))
    with pytest.raises(FrptError, match=rf"m.ref.npz meta: lacks the field {name}: re-export the model"):
        load_bundle(tmp_path / "m.ref.npz")


@pytest.mark.parametrize(("name", "value"), BAD_META)
def test_meta_field_of_the_wrong_type_is_refused_naming_it(tmp_path, name, value):
    _write_with_meta(tmp_path / "m.ref.npz", json.dumps({**_bundle().meta, name: value}))
    with pytest.raises(FrptError, match=rf"m.ref.npz meta: {name} must be .*: re-export the model"):
        load_bundle(tmp_path / "m.ref.npz")


def test_meta_of_exactly_the_limit_is_read_one_more_character_is_refused(tmp_path):
    text = json.dumps(_bundle().meta)
    _write_with_meta(tmp_path / "at.ref.npz", text + " " * (META_LIMIT - len(text)))  # JSON ignores the padding
    assert load_bundle(tmp_path / "at.ref.npz").meta == _bundle().meta
    _write_with_meta(tmp_path / "over.ref.npz", text + " " * (META_LIMIT + 1 - len(text)))
    with pytest.raises(FrptError, match=r"over.ref.npz: meta must be one JSON string, got <U1048577 \[\]"):
        load_bundle(tmp_path / "over.ref.npz")


@pytest.mark.parametrize("batches", [(1, 2, 3), (6,), (2, 2, 1, 1), (1, 1, 1, 1, 1, 1)])
def test_batches_follow_the_recorded_batching(batches):
    bundle = _bundle(batches)
    pieces = list(bundle.batches())
    assert [len(images) for images, _ in pieces] == list(batches) == [len(rows) for _, rows in pieces]
    np.testing.assert_array_equal(np.concatenate([images for images, _ in pieces]), bundle.images)
    np.testing.assert_array_equal(np.concatenate([rows for _, rows in pieces]), bundle.embeddings)
    assert [len(p) for p in split_rows(np.arange(sum(batches)), np.array(batches))] == list(batches)


def test_a_bundle_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _bundle().precision = Precision.fp32  # type: ignore[misc]


def test_a_bundle_of_one_image_is_valid_of_none_is_refused():
    assert _bundle((1,)).images.shape == (1, SIZE, SIZE, 3)
    empty = (np.zeros((0, SIZE, SIZE, 3), np.uint8), np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    with pytest.raises(FrptError, match=r"bundle embeddings must be float32 \[0, D\] with M > 0, got float32 \[0, 4\]"):
        RefBundle(*empty, CFG, "d" * 64, Precision.fp32)


def test_a_one_image_bundle_saved_into_a_new_folder_loads_back(tmp_path):
    bundle = _bundle((1,))
    path = save_bundle(tmp_path / "new" / "deeper" / "m.ref.npz", bundle)
    assert path == tmp_path / "new" / "deeper" / "m.ref.npz"
    loaded = load_bundle(path)
    np.testing.assert_array_equal(loaded.images, bundle.images)
    assert loaded.batch_sizes.tolist() == [1] and loaded.meta == bundle.meta


@pytest.mark.parametrize("dim", [1, 1 << 16])
def test_embedding_widths_1_and_65536_are_read(tmp_path, dim):
    bundle = _bundle((2,))
    wide = dataclasses.replace(bundle, embeddings=np.ones((2, dim), np.float32))
    assert load_bundle(save_bundle(tmp_path / "w.ref.npz", wide)).embeddings.shape == (2, dim)


def test_an_embedding_width_over_65536_is_refused_from_the_header(tmp_path):
    wide = dataclasses.replace(_bundle((2,)), embeddings=np.ones((2, (1 << 16) + 1), np.float32))
    with pytest.raises(FrptError, match=r"0 < D <= 65536, the header says float32 \[2, 65537\]"):
        load_bundle(save_bundle(tmp_path / "w.ref.npz", wide))


def test_one_batch_per_image_loads_and_no_batch_is_refused_from_the_header(tmp_path):
    ones = _bundle((1, 1, 1))
    assert load_bundle(save_bundle(tmp_path / "ones.ref.npz", ones)).batch_sizes.tolist() == [1, 1, 1]
    path = tmp_path / "none.ref.npz"
    with zipfile.ZipFile(path, "w") as archive:
        arrays = {"images": ones.images, "embeddings": ones.embeddings, "batch_sizes": np.zeros(0, np.int64)}
        for key, value in {**arrays, "meta": np.array(json.dumps(ones.meta))}.items():
            with archive.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, value)
    with pytest.raises(FrptError, match=r"none.ref.npz: batch_sizes must be int64 \[B <= 3\], got \[0\]$"):
        load_bundle(path)
