"""Reference bundle and engine sidecar: atomic round-trips and one-line errors on bad files (numpy only)."""

import hashlib
import json
import os

import numpy as np
import pytest
from runtime_toys import sidecar_fields

from frpt_runtime.bundle import _REEXPORT, RefBundle, load_bundle, save_bundle
from frpt_runtime.contract import ExportMetadata, Lowering, Precision, bundle_path_for, sidecar_path_for
from frpt_runtime.engine_sidecar import (
    EngineSidecar,
    check_compatible,
    read_sidecar,
    sha256_file,
    write_sidecar,
)
from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import FRPTConfig
from frpt_runtime.parity import THRESHOLDS

CFG = FRPTConfig(input_size=64, num_classes=3, class_names=("a", "b", "c"))


def _bundle(m: int = 5, d: int = 8) -> RefBundle:
    rng = np.random.default_rng(0)
    return RefBundle(
        images=rng.integers(0, 256, size=(m, 64, 64, 3), dtype=np.uint8),
        embeddings=rng.normal(size=(m, d)).astype(np.float32),
        batch_sizes=np.array([1, m - 1], dtype=np.int64),
        config=CFG,
        model_sha256="c" * 64,
        precision=Precision.fp32,
    )


def test_round_trip(tmp_path):
    bundle = _bundle()
    path = save_bundle(tmp_path / "model.ref.npz", bundle)
    assert [p.name for p in tmp_path.iterdir()] == ["model.ref.npz"]  # no temp file left
    again = load_bundle(path)
    np.testing.assert_array_equal(again.images, bundle.images)
    np.testing.assert_array_equal(again.embeddings, bundle.embeddings)
    assert again.config == CFG and again.thresholds == THRESHOLDS and again.toolkit_version == bundle.toolkit_version
    assert [len(i) for i, _ in again.batches()] == [1, 4]
    assert bundle_path_for(tmp_path / "x" / "model.onnx") == tmp_path / "x" / "model.ref.npz"


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(images=np.zeros((5, 64, 64, 3), np.float32)), "uint8"),
        (dict(images=np.zeros((5, 17, 17, 3), np.uint8)), "uint8"),
        (dict(embeddings=np.zeros((4, 8), np.float32)), "float32"),
        (dict(embeddings=np.zeros((5, 8), np.float64)), "float32"),
        (dict(batch_sizes=np.array([2, 2], np.int64)), "summing to 5"),
        (dict(batch_sizes=np.array([5, 0], np.int64)), "positive"),
    ],
)
def test_invalid_contents(change, match):
    good = _bundle()
    fields = dict(
        images=good.images, embeddings=good.embeddings, batch_sizes=good.batch_sizes, config=CFG,
        model_sha256="c" * 64, precision=Precision.fp32,
    )  # fmt: skip
    with pytest.raises(FrptError, match=match):
        RefBundle(**{**fields, **change})


def test_bad_files_one_line(tmp_path):
    with pytest.raises(FrptError, match="not found"):
        load_bundle(tmp_path / "missing.ref.npz")
    path = save_bundle(tmp_path / "m.ref.npz", _bundle())
    truncated = tmp_path / "t.ref.npz"
    truncated.write_bytes(path.read_bytes()[:200])
    garbage = tmp_path / "g.ref.npz"
    garbage.write_bytes(b"not a zip")
    partial = tmp_path / "p.ref.npz"
    np.savez(partial, images=np.zeros((1, 64, 64, 3), np.uint8))
    pickled = tmp_path / "o.ref.npz"
    b = _bundle()
    np.savez(
        pickled,
        images=b.images,
        embeddings=b.embeddings,
        batch_sizes=b.batch_sizes,
        meta=np.array([{"x": 1}], dtype=object),
    )
    for bad, match in ((truncated, "unreadable"), (garbage, "unreadable"), (partial, "lacks"), (pickled, "meta must")):
        with pytest.raises(FrptError, match=match) as info:
            load_bundle(bad)
        assert "\n" not in str(info.value)


def _sidecar(**kw) -> EngineSidecar:
    metadata = ExportMetadata(CFG, Precision.fp16, Lowering.standard, 17, "0.1.0").to_props()
    return EngineSidecar(**sidecar_fields(**{"onnx_metadata": metadata, "onnx_sha256": "a" * 64, **kw}))


def test_sidecar_round_trip_and_checks(tmp_path):
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"engine")
    path = write_sidecar(plan, _sidecar(plan_sha256=sha256_file(plan)))
    assert path == sidecar_path_for(plan) == tmp_path / "model.plan.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.plan", "model.plan.json"]
    side = read_sidecar(plan)
    assert side == _sidecar(plan_sha256=sha256_file(plan))
    assert side.plan_sha256 == hashlib.sha256(b"engine").hexdigest()
    check_compatible(side, trt_flavour="tensorrt", trt_version="10.3.0", compute_capability="8.7")
    with pytest.raises(FrptError, match="built with tensorrt 10.3.0, this is tensorrt 11.1.0"):
        check_compatible(side, trt_flavour="tensorrt", trt_version="11.1.0", compute_capability="8.7")
    with pytest.raises(FrptError, match="compute capability 8.7"):
        check_compatible(side, trt_flavour="tensorrt", trt_version="10.3.0", compute_capability="9.0")


FIX = "rebuild it on this box with `frpt-export trt --onnx model.onnx`"


@pytest.mark.parametrize(
    ("flavour", "version"),
    [("tensorrt", "10.4.0"), ("tensorrt", "10.3.1"), ("tensorrt", "10.3"), ("tensorrt_rtx", "10.3.0")],
)
def test_sidecar_refuses_any_other_tensorrt_minor_patch_or_flavour(flavour: str, version: str) -> None:
    """A plan deserialises only on the exact TensorRT it was built with: a minor or patch release differs too."""
    with pytest.raises(FrptError) as refusal:
        check_compatible(_sidecar(), trt_flavour=flavour, trt_version=version, compute_capability="8.7")
    assert str(refusal.value) == f"engine built with tensorrt 10.3.0, this is {flavour} {version}: {FIX}"


@pytest.mark.parametrize(("built", "device"), [("8.6", "8.7"), ("8.7", "8.6"), ("8.7", "8.9"), ("9.0", "10.0")])
def test_sidecar_refuses_another_minor_compute_capability(built: str, device: str) -> None:
    """sm_86 and sm_87 share a major but not their SASS: the full ``major.minor`` must match."""
    side = _sidecar(compute_capability=built, gpu_name="built-here")
    with pytest.raises(FrptError) as refusal:
        check_compatible(side, trt_flavour="tensorrt", trt_version="10.3.0", compute_capability=device)
    assert (
        str(refusal.value) == f"engine built for compute capability {built} (built-here), this GPU is {device}: {FIX}"
    )
    check_compatible(side, trt_flavour="tensorrt", trt_version="10.3.0", compute_capability=built)


def test_sidecar_capability_unknown_or_an_rtx_target_is_left_to_the_runtime() -> None:
    """No build GPU recorded, no GPU queried, or a TensorRT-RTX target name (not major.minor): nothing to compare."""
    for built, device in [(None, "8.7"), ("8.7", None), ("SM86", "8.7")]:
        check_compatible(_sidecar(compute_capability=built), trt_flavour="tensorrt", trt_version="10.3.0",
                         compute_capability=device)  # fmt: skip


def test_sidecar_errors(tmp_path):
    with pytest.raises(FrptError, match="not found"):
        read_sidecar(tmp_path / "none.plan")
    sidecar_path_for(tmp_path / "bad.plan").write_text("{")
    with pytest.raises(FrptError, match="unreadable"):
        read_sidecar(tmp_path / "bad.plan")
    sidecar_path_for(tmp_path / "old.plan").write_text(json.dumps({"precision": "fp16"}))
    with pytest.raises(FrptError, match="lacks the fields"):
        read_sidecar(tmp_path / "old.plan")
    with pytest.raises(FrptError, match="batch range"):
        _sidecar(min_batch=4, opt_batch=2)
    with pytest.raises(FrptError, match="trt_flavour"):
        _sidecar(trt_flavour="onnxruntime")


class _Payload:
    """Unpickling this creates the folder ``marker``: the side effect that must never fire."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


_PICKLED_REFUSALS = {
    "meta": "meta must be one JSON string, got object []",
    "images": "images must be uint8 [M, 64, 64, 3] with 0 < M <= 4096, the header says object [5, 64, 64, 3]",
    "embeddings": "embeddings must be float32 [5, D] with 0 < D <= 65536, the header says object [5, 8]",
    "batch_sizes": "batch_sizes must be int64 [B <= 5], got [2]",
}


@pytest.mark.parametrize("member", list(_PICKLED_REFUSALS))
def test_pickled_bundle_member_is_refused_before_it_is_unpickled(tmp_path, member):
    """An object array (a pickle) in any member is refused from its header: the payload never runs."""
    import zipfile

    good = save_bundle(tmp_path / "good.ref.npz", _bundle())
    marker = tmp_path / "unpickled"
    with zipfile.ZipFile(good) as archive:
        arrays = {name[: -len(".npy")]: np.lib.format.read_array(archive.open(name)) for name in archive.namelist()}
    shape = () if member == "meta" else arrays[member].shape
    hostile = np.empty(shape, dtype=object)
    hostile[...] = _Payload(str(marker))
    bad = tmp_path / "pickled.ref.npz"
    np.savez(bad, **{**arrays, member: hostile})
    with zipfile.ZipFile(bad) as archive, archive.open(f"{member}.npy") as stored:
        assert b"mkdir" in stored.read()  # the pickle really is there: loading it with allow_pickle would fire
    with pytest.raises(FrptError) as refusal:
        load_bundle(bad)
    assert not marker.exists()
    reason = _PICKLED_REFUSALS[member]
    if member in ("meta", "batch_sizes"):
        assert str(refusal.value) == f"reference bundle {bad}: {reason}"
    else:
        assert str(refusal.value) == f"reference bundle {bad}: {reason}: {_REEXPORT}"


def test_array_sizes_are_checked_from_the_headers_before_anything_is_read(tmp_path):
    """A ~100 KB bundle declaring 100 MB of images is refused without allocating them (issue 9: 1.2 GB RSS)."""
    import tracemalloc
    import zipfile

    good = _bundle()
    path = tmp_path / "bomb.ref.npz"
    shape = (100, 580, 580, 3)  # 100 MB of zeros, deflated
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("images.npy", "w", force_zip64=True) as member:
            header = {"descr": "|u1", "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(member, header)
            zeros = bytes(1 << 20)
            for _ in range(int(np.prod(shape)) >> 20):
                member.write(zeros)
        for key, value in (("embeddings", good.embeddings), ("batch_sizes", good.batch_sizes)):
            with archive.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, value)
        with archive.open("meta.npy", "w") as member:
            np.lib.format.write_array(member, np.array(json.dumps(good.meta)))
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(FrptError, match=r"images must be uint8 \[M, 64, 64, 3\].*the header says uint8 \[100, 580"):
            load_bundle(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_bundle_records_what_it_was_made_for(tmp_path):
    bundle = _bundle()
    again = load_bundle(save_bundle(tmp_path / "m.ref.npz", bundle))
    assert (again.model_sha256, again.precision, again.lowering) == ("c" * 64, "fp32", "standard")
    fields = {"model_sha256", "precision", "lowering", "family", "config", "thresholds", "toolkit_version"}
    assert set(bundle.meta) == fields
