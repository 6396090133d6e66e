"""The engine sidecar's reader field by field, its batch range at the bounds, the compatibility rule (issue 15).

Every field of ``<plan>.json`` is checked when a sidecar is read: a missing field or a value of the wrong type or
range is one line naming that field, and the profile's bounds are inclusive (1 <= min <= opt <= max).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from runtime_toys import sidecar_fields

from frpt_runtime.contract import ExportMetadata, Lowering, Precision, sidecar_path_for
from frpt_runtime.engine_sidecar import EngineSidecar, check_compatible, read_sidecar, write_sidecar
from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import FRPTConfig


def _fields(**changes: object) -> dict[str, object]:
    metadata = ExportMetadata(FRPTConfig(), Precision.fp16, Lowering.standard, 17, "0.1.0").to_props()
    return sidecar_fields(**{"onnx_metadata": metadata, "onnx_sha256": "a" * 64, "bundle_sha256": "c" * 64, **changes})


FIELDS = list(_fields())

BAD_VALUES = [
    ("onnx_metadata", {"frpt.config": 1}),
    ("onnx_metadata", ["frpt.config"]),
    ("trt_flavour", "tensorrt_x"),
    ("trt_version", ""),
    ("trt_version", 10),
    ("gpu_name", 5),
    ("compute_capability", 8.7),
    ("min_batch", 0),
    ("min_batch", 1.0),
    ("opt_batch", 0),
    ("max_batch", 0),
    ("max_batch", True),
    ("onnx_sha256", "a" * 63),
    ("bundle_sha256", "xyz"),
    ("plan_sha256", "B" * 64),
    ("toolkit_version", 1),
    ("plugin_required", "no"),
]


@pytest.mark.parametrize("name", FIELDS)
def test_a_sidecar_missing_any_field_is_refused_naming_it(tmp_path, name):
    data = _fields()
    del data[name]
    sidecar_path_for(tmp_path / "m.plan").write_text(json.dumps(data))
    with pytest.raises(FrptError, match=rf"engine sidecar .*m\.plan\.json: lacks the field {name}: rebuild"):
        read_sidecar(tmp_path / "m.plan")


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_a_sidecar_field_of_the_wrong_type_or_range_is_refused_naming_it(tmp_path, name, value):
    sidecar_path_for(tmp_path / "m.plan").write_text(json.dumps(_fields(**{name: value})))
    with pytest.raises(FrptError, match=rf"m\.plan\.json: {name} must be .*: rebuild the engine"):
        read_sidecar(tmp_path / "m.plan")
    with pytest.raises(FrptError, match=rf"^engine sidecar: {name} must be"):
        EngineSidecar(**_fields(**{name: value}))  # type: ignore[arg-type]


def test_the_optional_fields_may_be_null_and_everything_round_trips(tmp_path):
    side = EngineSidecar(**_fields(gpu_name=None, compute_capability=None, bundle_sha256=None))  # type: ignore[arg-type]
    write_sidecar(tmp_path / "m.plan", side)
    assert read_sidecar(tmp_path / "m.plan") == side
    full = EngineSidecar(**_fields())  # type: ignore[arg-type]
    write_sidecar(tmp_path / "f.plan", full)
    assert read_sidecar(tmp_path / "f.plan").to_dict() == _fields()


@pytest.mark.parametrize(("low", "opt", "high"), [(1, 1, 1), (2, 2, 2), (1, 1, 8), (1, 8, 8), (3, 5, 9)])
def test_the_batch_range_bounds_are_inclusive(low, opt, high):
    side = EngineSidecar(**_fields(min_batch=low, opt_batch=opt, max_batch=high))  # type: ignore[arg-type]
    assert (side.min_batch, side.opt_batch, side.max_batch) == (low, opt, high)


@pytest.mark.parametrize(("low", "opt", "high"), [(2, 1, 8), (1, 9, 8), (4, 4, 3)])
def test_a_batch_range_out_of_order_is_refused(low, opt, high):
    with pytest.raises(FrptError, match=rf"1 <= min <= opt <= max, got {low}/{opt}/{high}: rebuild"):
        EngineSidecar(**_fields(min_batch=low, opt_batch=opt, max_batch=high))  # type: ignore[arg-type]


def test_a_sidecar_is_immutable():
    side = EngineSidecar(**_fields())  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        side.max_batch = 1024  # type: ignore[misc]


def test_metadata_that_is_no_export_metadata_is_refused_when_the_sidecar_is_made():
    with pytest.raises(FrptError, match="engine sidecar: no frpt.config"):
        EngineSidecar(**_fields(onnx_metadata={"other": "x"}))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("built", "running", "accepted"),
    [
        ("8.6", "8.6", True),
        ("8.6", "8.7", False),  # a minor mismatch is another architecture
        ("8.7", "8.6", False),
        ("8.6", "9.6", False),
        ("8.6", None, True),  # the running GPU unknown: the plan's own deserialisation decides
        (None, "8.6", True),
        ("SM86", "8.7", True),  # a TensorRT-RTX target name, not a "major.minor": not compared
    ],
)
def test_compute_capability_compared_major_and_minor(built, running, accepted):
    side = EngineSidecar(**_fields(compute_capability=built))  # type: ignore[arg-type]
    if accepted:
        check_compatible(side, trt_flavour="tensorrt", trt_version="10.3.0", compute_capability=running)
    else:
        with pytest.raises(FrptError, match=rf"built for compute capability {built} \(Orin\), this GPU is {running}"):
            check_compatible(side, trt_flavour="tensorrt", trt_version="10.3.0", compute_capability=running)


@pytest.mark.parametrize(
    ("flavour", "version"), [("tensorrt", "10.3.1"), ("tensorrt", "10.4.0"), ("tensorrt_rtx", "10.3.0")]
)
def test_another_tensorrt_version_or_flavour_is_refused(flavour, version):
    side = EngineSidecar(**_fields())  # type: ignore[arg-type]
    with pytest.raises(FrptError, match=rf"built with tensorrt 10.3.0, this is {flavour} {version}: rebuild"):
        check_compatible(side, trt_flavour=flavour, trt_version=version, compute_capability="8.7")
