"""The ``frpt-embed`` output reader field by field, and the pair check of ``read_embeddings`` (issue 15).

A manifest missing any field, or holding a value of the wrong type or range, is refused in one line naming that
field; ``read_embeddings`` refuses an embeddings file that is not the one the manifest hashes, has another shape
or dtype, or holds a non-finite row (naming the first such image).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from frpt_runtime.errors import FrptError
from frpt_runtime.manifest import (
    EMBEDDINGS_FILE,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    RUN_FILE,
    read_embeddings,
    read_manifest,
    remove_stale_outputs,
    write_outputs,
)


def _manifest(count: int, **changes: object) -> dict[str, object]:
    manifest: dict[str, object] = dict(
        format=MANIFEST_FORMAT,
        toolkit_version="0.1.0",
        root="/data/images",
        count=count,
        embedding_dim=4,
        images=[f"img{i}.png" for i in range(count)],
        skipped=[{"path": "bad.png", "reason": "not an image"}],
        model={"path": "m.onnx", "sha256": "a" * 64},
        backend="onnxruntime",
        backend_detail={"providers": "CPUExecutionProvider"},
        family="frpt",
        precision="fp32",
        lowering="standard",
        config={"input_size": 224, "crop_pct": 0.875},
        batch=8,
        timings_file=RUN_FILE,
    )
    return {**manifest, **changes}


def _rows(count: int) -> np.ndarray:
    return np.arange(count * 4, dtype=np.float32).reshape(count, 4) / 7.0


def _written(tmp_path, count: int = 3, rows: np.ndarray | None = None, **changes: object) -> dict[str, object]:
    return write_outputs(tmp_path, _rows(count) if rows is None else rows, _manifest(count, **changes), {"wall": 1.0})


def _rewrite(tmp_path, data: dict[str, object]) -> None:
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(data))


FIELDS = [name for name in _manifest(1) if name != "format"] + ["embeddings_sha256"]

BAD_VALUES = [
    ("toolkit_version", 1),
    ("root", None),
    ("count", -1),
    ("count", 2.0),
    ("embedding_dim", 0),
    ("embeddings_sha256", "0" * 63),
    ("images", "img0.png"),
    ("images", [1, 2, 3]),
    ("skipped", [{"path": "x"}]),
    ("skipped", [{"reason": "not an image"}]),
    ("skipped", [{"path": "x", "reason": 3}]),
    ("model", {"path": "m.onnx"}),
    ("model", {"sha256": "a" * 64}),
    ("model", {"path": 1, "sha256": "a" * 64}),
    ("model", {"path": "m.onnx", "sha256": "short"}),
    ("backend", 5),
    ("backend_detail", {"providers": ["CPU"]}),
    ("family", None),
    ("precision", "int8"),
    ("lowering", 1),
    ("config", [224]),
    ("config", "input_size=224"),
    ("batch", 0),
    ("timings_file", False),
]


def test_outputs_round_trip_and_the_manifest_is_the_commit_record(tmp_path):
    written = _written(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([EMBEDDINGS_FILE, MANIFEST_FILE, RUN_FILE])
    rows, manifest = read_embeddings(tmp_path)
    assert rows.dtype == np.float32 and np.array_equal(rows, _rows(3))
    assert manifest == written == read_manifest(tmp_path)
    assert json.loads((tmp_path / RUN_FILE).read_text()) == {"wall": 1.0}


def test_an_empty_run_with_no_images_is_a_valid_output(tmp_path):
    _written(tmp_path, count=0, rows=np.zeros((0, 4), np.float32))
    rows, manifest = read_embeddings(tmp_path)
    assert rows.shape == (0, 4) and manifest["count"] == 0 and manifest["images"] == []


@pytest.mark.parametrize("name", FIELDS)
def test_a_manifest_missing_any_field_is_refused_naming_it(tmp_path, name):
    data = _written(tmp_path)
    del data[name]
    _rewrite(tmp_path, data)
    with pytest.raises(FrptError, match=rf"manifest.json: lacks the field {name}: run frpt-embed again$"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_a_manifest_field_of_the_wrong_type_or_range_is_refused_naming_it(tmp_path, name, value):
    _rewrite(tmp_path, {**_written(tmp_path), name: value})
    with pytest.raises(FrptError, match=rf"manifest.json: {name} must be .*: run frpt-embed again$"):
        read_manifest(tmp_path)


@pytest.mark.parametrize("count", [2, 4])
def test_a_count_other_than_the_number_of_images_is_refused(tmp_path, count):
    _rewrite(tmp_path, {**_written(tmp_path), "count": count})
    with pytest.raises(FrptError, match=rf"manifest.json: count {count} but 3 images listed: run frpt-embed again"):
        read_manifest(tmp_path)


def test_embeddings_that_are_not_the_manifests_file_are_refused(tmp_path):
    _written(tmp_path)
    np.save(tmp_path / EMBEDDINGS_FILE, _rows(3) + 1.0)  # same shape, other bytes: a mismatched pair
    with pytest.raises(FrptError, match=r"embeddings.npy is not the file manifest.json describes \(sha256 differs"):
        read_embeddings(tmp_path)
    (tmp_path / EMBEDDINGS_FILE).unlink()
    with pytest.raises(FrptError, match=r"cannot read .*embeddings.npy \(FileNotFoundError\) that manifest.json"):
        read_embeddings(tmp_path)


@pytest.mark.parametrize(
    "rows",
    [_rows(3).astype(np.float64), _rows(3)[:, :3].copy(), _rows(4), _rows(3).reshape(3, 2, 2)],
    ids=["float64", "narrower", "more rows", "rank 3"],
)
def test_embeddings_of_another_dtype_or_shape_than_the_manifest_says_are_refused(tmp_path, rows):
    _written(tmp_path, rows=rows)  # the hash matches these bytes: only the shape check can refuse them
    with pytest.raises(FrptError, match=r"embeddings.npy is not float32 \[3, 4\] as manifest.json says"):
        read_embeddings(tmp_path)


def test_embeddings_that_do_not_parse_are_one_line(tmp_path):
    written = _written(tmp_path)
    (tmp_path / EMBEDDINGS_FILE).write_bytes(b"not an npy file")
    from frpt_runtime.digests import sha256_file

    _rewrite(tmp_path, {**written, "embeddings_sha256": sha256_file(tmp_path / EMBEDDINGS_FILE)})
    with pytest.raises(FrptError, match=r"cannot read .*embeddings.npy \(ValueError\): run frpt-embed again"):
        read_embeddings(tmp_path)


@pytest.mark.parametrize(("bad_rows", "value"), [([2], np.nan), ([1, 2], np.inf), ([0], -np.inf)])
def test_non_finite_rows_are_refused_naming_the_first(tmp_path, bad_rows, value):
    rows = _rows(3)
    rows[bad_rows, 1] = value
    _written(tmp_path, rows=rows)
    first = bad_rows[0]
    with pytest.raises(FrptError, match=rf"holds NaN or Inf in {len(bad_rows)} rows \(first: row {first}, img{first}"):
        read_embeddings(tmp_path)


def test_remove_stale_outputs_clears_the_temps_of_all_three_outputs_only(tmp_path):
    stale = [tmp_path / f".{name}.4242.tmp" for name in (EMBEDDINGS_FILE, RUN_FILE, MANIFEST_FILE)]
    kept = [tmp_path / ".other.json.4242.tmp", tmp_path / "notes.txt"]
    for path in stale + kept:
        path.write_text("x")
    remove_stale_outputs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in kept)


def test_pickled_embeddings_are_refused_without_unpickling_them(tmp_path):
    """An ``embeddings.npy`` of pickled objects (hash matching) is refused before any object is built."""
    marker = tmp_path / "unpickled"

    class SideEffect:
        def __reduce__(self):
            return (marker.mkdir, ())

    written = _written(tmp_path)
    np.save(tmp_path / EMBEDDINGS_FILE, np.array([[SideEffect()] * 4] * 3, dtype=object), allow_pickle=True)
    from frpt_runtime.digests import sha256_file

    _rewrite(tmp_path, {**written, "embeddings_sha256": sha256_file(tmp_path / EMBEDDINGS_FILE)})
    with pytest.raises(FrptError, match=r"cannot read .*embeddings.npy \(ValueError\): run frpt-embed again"):
        read_embeddings(tmp_path)
    assert not marker.exists()


def test_one_dimensional_embeddings_are_valid(tmp_path):
    rows = np.array([[0.5], [-1.0]], dtype=np.float32)
    write_outputs(tmp_path, rows, _manifest(2, embedding_dim=1), {})
    read, manifest = read_embeddings(tmp_path)
    assert np.array_equal(read, rows) and manifest["embedding_dim"] == 1
