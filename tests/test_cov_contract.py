"""The export metadata reader (``ExportMetadata``) and the contract's file names, value by value (issue 15).

The opset range is the contract's (GridSample needs >= 16, opset 20 renamed its mode): both ends are checked on
each side, and every malformed opset is one ``FrptError`` line, never a Python ``ValueError``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from frpt_runtime.contract import (
    DEFAULT_OPSET,
    SUPPORTED_OPSETS,
    ExportMetadata,
    Lowering,
    MetaKey,
    Precision,
    bundle_path_for,
    is_engine_path,
    polygraphy_paths_for,
    sidecar_path_for,
)
from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import FRPTConfig


def _props(**changes: str) -> dict[str, str]:
    props = ExportMetadata(FRPTConfig(input_size=224), Precision.fp32, Lowering.plugin, 17, "0.1.0").to_props()
    return {**props, **changes}


@pytest.mark.parametrize("opset", [16, 17, 18, 19])
def test_every_supported_opset_is_read(opset):
    assert ExportMetadata.from_props(_props(**{"frpt.opset": str(opset)}), "m.onnx").opset == opset


@pytest.mark.parametrize("value", ["15", "20", "0", "", "17.0", "x", "-17", " 17"])
def test_an_opset_outside_16_to_19_or_not_a_number_is_one_line(value):
    with pytest.raises(FrptError, match=rf"^m.onnx: frpt.opset is '{value}', expected one of \(16, 17, 18, 19\)"):
        ExportMetadata.from_props(_props(**{"frpt.opset": value}), "m.onnx")


def test_the_default_opset_is_17_and_supported():
    # GridSample needs opset >= 16; at 20 its mode was renamed and TensorRT's parser falls back to nearest.
    assert DEFAULT_OPSET == 17 and SUPPORTED_OPSETS == (16, 17, 18, 19)


def test_props_name_the_family_and_round_trip():
    meta = ExportMetadata(FRPTConfig(input_size=224), Precision.fp16, Lowering.standard, 18, "0.2.0", Precision.fp32)
    props = meta.to_props()
    assert props[MetaKey.family.value] == "frpt" and props[MetaKey.opset.value] == "18"
    assert set(props) == {key.value for key in MetaKey}
    assert ExportMetadata.from_props(props, "m.onnx") == meta
    without = {k: v for k, v in props.items() if k != MetaKey.family.value}  # files written before the key
    assert ExportMetadata.from_props(without, "m.onnx") == meta


def test_metadata_is_immutable():
    meta = ExportMetadata.from_props(_props(), "m.onnx")
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.opset = 19  # type: ignore[misc]


def test_file_names_beside_a_model():
    model = Path("d/model.onnx")
    assert polygraphy_paths_for(model) == (Path("d/model.ref.inputs.json"), Path("d/model.ref.outputs.json"))
    assert bundle_path_for(model) == Path("d/model.ref.npz") == bundle_path_for("d/model.plan")
    assert sidecar_path_for("d/model.plan") == Path("d/model.plan.json")
    assert [is_engine_path(p) for p in ("a.plan", "a.ENGINE", "a.trt", "a.onnx", "a.plan.json")] == [
        True,
        True,
        True,
        False,
        False,
    ]
