"""frpt_runtime.onnx_files: the protobuf walk finds what the onnx package writes; external data outside the model's
folder is refused before any backend or builder opens it; the model hash covers external data (issue 9, item 8)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data
from runtime_toys import TOY_DIM, TOY_SIZE, make_toy_onnx

from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from frpt_runtime.digests import sha256_file
from frpt_runtime.errors import FrptError
from frpt_runtime.onnx_files import check_external_data, external_data, model_sha256


def _external_toy(folder: Path, location: str = "weights.bin") -> Path:
    """The toy export with its initializers in one external data file ``location``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "toy.onnx"
    make_toy_onnx(path)
    model = onnx.load(path)
    onnx.save_model(model, path, save_as_external_data=True, location=location, size_threshold=1024)
    return path


def _onnx_package_view(path: Path) -> list[tuple[str, str]]:
    """``(tensor, location)`` of every external tensor, as the onnx package sees them (every graph and function)."""
    model = onnx.load(path, load_external_data=False)
    tensors = []

    def graph_tensors(graph: onnx.GraphProto) -> None:
        tensors.extend(graph.initializer)
        for sparse in graph.sparse_initializer:
            tensors.extend([sparse.values, sparse.indices])
        for node in graph.node:
            node_tensors(node)

    def node_tensors(node: onnx.NodeProto) -> None:
        for attribute in node.attribute:
            tensors.extend([attribute.t] if attribute.HasField("t") else [])
            tensors.extend(attribute.tensors)
            for graph in [attribute.g] if attribute.HasField("g") else []:
                graph_tensors(graph)
            for graph in attribute.graphs:
                graph_tensors(graph)

    graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            node_tensors(node)
    return sorted(
        (t.name, {e.key: e.value for e in t.external_data}["location"])
        for t in tensors
        if any(e.key == "location" for e in t.external_data)
    )


def _nested_model(folder: Path) -> Path:
    """Initializers, a Constant inside an If branch, a sparse initializer and a function's Constant, each with its
    own external data file (the places an ONNX model can hold a tensor)."""
    folder.mkdir(parents=True, exist_ok=True)

    def external(array: np.ndarray, name: str) -> TensorProto:
        tensor = numpy_helper.from_array(array, name)
        (folder / f"{name}.bin").write_bytes(tensor.raw_data)
        set_external_data(tensor, f"{name}.bin", offset=0, length=array.nbytes)
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        return tensor

    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=external(np.arange(6, dtype=np.float32), "branch_const"))],
        "branch",
        [],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [6])],
    )
    sparse = helper.make_sparse_tensor(
        external(np.ones(2, np.float32), "sparse_values"), external(np.array([0, 3], np.int64), "sparse_idx"), [4]
    )
    function = helper.make_function(
        "local",
        "Fn",
        [],
        ["k"],
        [helper.make_node("Constant", [], ["k"], value=external(np.zeros(3, np.float32), "function_const"))],
        [helper.make_opsetid("", 17)],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["c"], then_branch=branch, else_branch=branch)],
        "nested",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [6])],
        [external(np.ones((2, 2), np.float32), "init")],
        sparse_initializer=[sparse],
    )
    model = helper.make_model(graph, functions=[function], opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "nested.onnx"
    onnx.save_model(model, path)
    return path


def test_walk_finds_exactly_what_the_onnx_package_writes(tmp_path: Path) -> None:
    one_file = _external_toy(tmp_path / "a")
    expected = _onnx_package_view(one_file)
    assert expected and sorted((e.tensor, e.location) for e in external_data(one_file)) == expected
    nested = _nested_model(tmp_path / "b")
    expected = _onnx_package_view(nested)
    assert len(expected) == 6  # init, the branch's Constant (twice: both branches), sparse values + indices, function
    assert sorted((e.tensor, e.location) for e in external_data(nested)) == expected
    assert check_external_data(nested) == sorted({location for _, location in expected})
    plain = tmp_path / "plain.onnx"
    make_toy_onnx(plain)
    assert external_data(plain) == [] and model_sha256(plain) == sha256_file(plain)  # no external data: file hash


def test_hash_covers_external_data(tmp_path: Path) -> None:
    path = _external_toy(tmp_path / "m")
    before = model_sha256(path)
    assert before != sha256_file(path)
    data = bytearray((tmp_path / "m" / "weights.bin").read_bytes())
    data[-1] ^= 1
    (tmp_path / "m" / "weights.bin").write_bytes(bytes(data))
    assert model_sha256(path) != before and sha256_file(path) == sha256_file(path)  # the .onnx bytes did not change


@pytest.mark.parametrize(
    "location, message",
    [
        ("/etc/passwd", "is not a relative POSIX path"),
        ("../outside.bin", "climbs out of the model's folder"),
        ("sub\\..\\..\\x.bin", "is not a relative POSIX path"),
        ("link.bin", "resolves outside the model's folder"),
        ("missing.bin", "is missing"),
        ("folder.bin", "is not a regular file"),
        ("short.bin", "of a 4-byte file"),
    ],
)
def test_bad_locations_are_refused_before_onnx_runtime_sees_it(tmp_path: Path, location: str, message: str) -> None:
    path = _external_toy(tmp_path / "m")
    good = (tmp_path / "m" / "weights.bin").read_bytes()
    (tmp_path / "outside.bin").write_bytes(good)
    (tmp_path / "m" / "link.bin").symlink_to(tmp_path / "outside.bin")  # the /etc/passwd trick
    (tmp_path / "m" / "folder.bin").mkdir()
    (tmp_path / "m" / "short.bin").write_bytes(good[:4])
    model = onnx.load(path, load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save_model(model, path)
    with pytest.raises(FrptError, match=message) as info:
        check_external_data(path)
    assert "\n" not in str(info.value) and "inside the model's folder" in str(info.value)
    with pytest.raises(FrptError, match=message):
        OnnxRuntimeBackend(path).activate()


def test_symlink_inside_the_folder_is_accepted_and_the_backend_runs(tmp_path: Path) -> None:
    (tmp_path / "m" / "data").mkdir(parents=True)
    path = _external_toy(tmp_path / "m", location="data/weights.bin")
    (tmp_path / "m" / "weights-link.bin").symlink_to(tmp_path / "m" / "data" / "weights.bin")
    model = onnx.load(path, load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "weights-link.bin"
    onnx.save_model(model, path)
    with OnnxRuntimeBackend(path) as backend:
        assert backend.info.sha256 == model_sha256(path) != sha256_file(path)
        out = backend.infer(np.zeros((1, TOY_SIZE, TOY_SIZE, 3), np.uint8) + 7)
        assert out.shape == (1, TOY_DIM)


def test_builder_refuses_before_tensorrt_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import frpt_export.trt_build as trt_build

    path = _external_toy(tmp_path / "m")
    os.replace(tmp_path / "m" / "weights.bin", tmp_path / "elsewhere.bin")
    (tmp_path / "m" / "weights.bin").symlink_to(tmp_path / "elsewhere.bin")
    monkeypatch.setattr(trt_build, "import_tensorrt", lambda hint: pytest.fail("TensorRT was reached"))
    with pytest.raises(FrptError, match="resolves outside the model's folder"):
        trt_build.build_engine(path, tmp_path / "m.plan")
    assert not (tmp_path / "m.plan").exists()
