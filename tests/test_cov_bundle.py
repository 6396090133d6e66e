"""Bundle headers, a bundle of another input size, export metadata, the ONNX Runtime backend's I/O checks and the
metadata reader on non-ONNX bytes (issue 15, coverage part; numpy, onnx and ONNX Runtime on CPU)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from runtime_toys import TOY_SIZE, make_toy_onnx, toy_bundle, toy_metadata

from frpt_export.onnx_meta import read_graph_facts
from frpt_runtime import cuda_memory
from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend, _check_gpu_ordinal
from frpt_runtime.bundle import MAX_BUNDLE_IMAGES, RefBundle, load_bundle
from frpt_runtime.contract import ExportMetadata, Precision
from frpt_runtime.devices import parse_device
from frpt_runtime.digests import sha256_file
from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import FRPTConfig
from frpt_runtime.verify import verify_model

SIZE = 8
CFG = FRPTConfig(input_size=SIZE, num_classes=3)


def _meta(config: FRPTConfig = CFG) -> dict:
    bundle = RefBundle(
        np.zeros((2, config.input_size, config.input_size, 3), np.uint8),
        np.zeros((2, 4), np.float32),
        np.array([2], np.int64),
        config,
        "d" * 64,
        Precision.fp32,
    )
    return bundle.meta


def _write(path, arrays: dict[str, np.ndarray], meta: dict, *, version=(1, 0)) -> None:
    """A bundle archive written array by array (bypassing :class:`RefBundle`'s checks)."""
    with zipfile.ZipFile(path, "w") as archive:
        for key, value in {**arrays, "meta": np.array(json.dumps(meta))}.items():
            with archive.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, value, version=version)


def _arrays(m: int = 3, size: int = SIZE, d: int = 4, batches=(3,)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "images": rng.integers(0, 256, (m, size, size, 3), dtype=np.uint8),
        "embeddings": rng.standard_normal((m, d)).astype(np.float32),
        "batch_sizes": np.array(batches, np.int64),
    }


def test_npy_format_2_headers_are_read(tmp_path):
    path = tmp_path / "v2.ref.npz"
    arrays = _arrays()
    _write(path, arrays, _meta(), version=(2, 0))
    bundle = load_bundle(path)
    np.testing.assert_array_equal(bundle.images, arrays["images"])
    assert bundle.config == CFG and bundle.batch_sizes.tolist() == [3]


def test_unsupported_npy_format_is_unreadable_in_one_line(tmp_path):
    path = tmp_path / "v9.ref.npz"
    _write(path, _arrays(), _meta())
    raw = bytearray(zipfile.ZipFile(path).read("images.npy"))
    raw[6] = 9  # the format's major version byte
    rebuilt = tmp_path / "rebuilt.ref.npz"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(rebuilt, "w") as target:
        for name in source.namelist():
            target.writestr(name, bytes(raw) if name == "images.npy" else source.read(name))
    with pytest.raises(FrptError, match=r"is unreadable \(ValueError: .*for images\): re-export the model"):
        load_bundle(rebuilt)


def test_bundle_images_of_another_size_than_its_config_are_refused_from_the_header(tmp_path):
    path = tmp_path / "size.ref.npz"
    _write(path, _arrays(size=SIZE + 4), _meta())
    with pytest.raises(
        FrptError, match=rf"images must be uint8 \[M, {SIZE}, {SIZE}, 3\] .*says uint8 \[3, 12, 12, 3\]"
    ):
        load_bundle(path)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (_arrays(d=0), r"embeddings must be float32 \[3, D\] with 0 < D <= 65536, the header says float32 \[3, 0\]"),
        ({**_arrays(), "embeddings": np.zeros((2, 4), np.float32)}, r"embeddings must be float32 \[3, D\]"),
        ({**_arrays(), "embeddings": np.zeros((3, 4), np.float64)}, "the header says float64"),
        (_arrays(batches=(1, 1, 1, 0)), r"batch_sizes must be int64 \[B <= 3\], got \[4\]"),
        ({**_arrays(), "batch_sizes": np.array([3], np.int32)}, r"batch_sizes must be int64 \[B <= 3\], got \[1\]"),
        ({**_arrays(), "images": np.zeros((0, SIZE, SIZE, 3), np.uint8)}, "with 0 < M <= 4096"),
    ],
    ids=["zero-width", "row-count", "float64", "too-many-batches", "int32-batches", "no-images"],
)
def test_bad_array_headers_are_refused(tmp_path, arrays, message):
    path = tmp_path / "bad.ref.npz"
    _write(path, arrays, _meta())
    with pytest.raises(FrptError, match=message):
        load_bundle(path)


def test_bundle_image_limit_is_inclusive(tmp_path):
    assert MAX_BUNDLE_IMAGES == 4096
    at_limit = tmp_path / "limit.ref.npz"
    _write(at_limit, _arrays(m=MAX_BUNDLE_IMAGES, size=SIZE, batches=(MAX_BUNDLE_IMAGES,)), _meta())
    assert load_bundle(at_limit).images.shape[0] == MAX_BUNDLE_IMAGES
    over = tmp_path / "over.ref.npz"
    _write(over, _arrays(m=MAX_BUNDLE_IMAGES + 1, size=SIZE, batches=(MAX_BUNDLE_IMAGES + 1,)), _meta())
    with pytest.raises(FrptError, match=r"with 0 < M <= 4096, the header says uint8 \[4097, 8, 8, 3\]"):
        load_bundle(over)


def test_bundle_batches_must_sum_to_the_image_count(tmp_path):
    path = tmp_path / "sum.ref.npz"
    _write(path, _arrays(batches=(1, 1)), _meta())
    with pytest.raises(FrptError, match=r"batch_sizes must be positive int64 summing to 3, got \[1, 1\]"):
        load_bundle(path)


def test_meta_that_is_not_one_string_is_refused(tmp_path):
    path = tmp_path / "meta.ref.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for key, value in {**_arrays(), "meta": np.array([1, 2])}.items():
            with archive.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, value)
    with pytest.raises(FrptError, match=r"meta must be one JSON string, got int64 \[2\]"):
        load_bundle(path)


# --- a bundle that does not fit the model ---------------------------------------------------------------------


def test_verify_refuses_a_bundle_of_another_input_size(tmp_path):
    model = tmp_path / "model.onnx"
    weights = make_toy_onnx(model)
    other = FRPTConfig(input_size=TOY_SIZE + 8, crop_pct=1.0)
    bundle_path = tmp_path / "other.ref.npz"
    images = np.zeros((2, TOY_SIZE + 8, TOY_SIZE + 8, 3), np.uint8)
    embeddings = np.ones((2, weights.shape[1]), np.float32)
    from frpt_runtime.bundle import save_bundle

    save_bundle(bundle_path, RefBundle(images, embeddings, np.array([2]), other, sha256_file(model), Precision.fp32))
    with OnnxRuntimeBackend(model) as backend, pytest.raises(FrptError) as info:
        verify_model(backend, bundle_path)
    expected = f"reference bundle images are {TOY_SIZE + 8}x{TOY_SIZE + 8} but model.onnx takes {TOY_SIZE}x{TOY_SIZE}"
    assert str(info.value).startswith(expected) and "--bundle" in str(info.value)
    toy_bundle(tmp_path / "model.ref.npz", weights, model)  # the bundle made for it passes
    with OnnxRuntimeBackend(model) as backend:
        assert verify_model(backend).passed


# --- the ONNX Runtime backend's I/O contract ------------------------------------------------------------------


def _renamed(path, *, input_name="images", output_name="embedding", input_type=TensorProto.UINT8, shape=None):
    """A one-node graph with the toy metadata and the given I/O names, input dtype and shape."""
    shape = shape or ["N", TOY_SIZE, TOY_SIZE, 3]
    graph = helper.make_graph(
        [
            helper.make_node("Cast", [input_name], ["f"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["f"], [output_name], axes=[1, 2], keepdims=0),
        ],
        "renamed",
        [helper.make_tensor_value_info(input_name, input_type, shape)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, toy_metadata())
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    "change",
    [{"input_name": "pixels"}, {"output_name": "features"}, {"input_type": TensorProto.FLOAT}],
    ids=["input-name", "output-name", "input-dtype"],
)
def test_wrong_io_names_or_dtype_are_refused_naming_the_contract(tmp_path, change):
    path = _renamed(tmp_path / "wrong.onnx", **change)
    with pytest.raises(FrptError) as info:
        OnnxRuntimeBackend(path).activate()
    assert str(info.value) == (
        f"{path}: expected input 'images' uint8 and output 'embedding': re-export with frpt-export"
    )


@pytest.mark.parametrize(
    "shape", [["N", TOY_SIZE, TOY_SIZE + 1, 3], ["N", TOY_SIZE, TOY_SIZE, 4], ["N", TOY_SIZE, TOY_SIZE]]
)
def test_graph_input_that_contradicts_the_metadata_is_refused(tmp_path, shape):
    path = _renamed(tmp_path / "shape.onnx", shape=shape)
    with pytest.raises(FrptError, match=rf"graph input 'images' is .* but its metadata says \[N, {TOY_SIZE}, "):
        OnnxRuntimeBackend(path).activate()


def test_correct_io_with_a_symbolic_leading_dim_activates(tmp_path):
    path = _renamed(tmp_path / "ok.onnx")
    with OnnxRuntimeBackend(path) as backend:
        assert backend.info.embedding_dim == 3
        out = backend.infer(np.full((2, TOY_SIZE, TOY_SIZE, 3), 5, np.uint8))
    np.testing.assert_allclose(out, np.full((2, 3), 5.0))


@pytest.mark.parametrize("content", [b"\x08\x07 definitely not a model", b"\xff\xfe not a protobuf \x00\x01"])
def test_malformed_model_bytes_are_one_line_not_a_buffer_error(tmp_path, content):
    # the protobuf walk failed mid-field: its traceback held slices of the mmap, whose close then raised
    # BufferError over the one-line error (found by this test)
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(FrptError) as info:
        OnnxRuntimeBackend(path).activate()
    assert str(info.value) == f"{path} is not a readable ONNX file (malformed protobuf): export it again"


def test_gpu_ordinal_past_the_gpus_present_is_refused(monkeypatch):
    monkeypatch.setattr(cuda_memory, "device_count", lambda: 2)
    gpu = [("CUDAExecutionProvider", {"device_id": "3"})]
    with pytest.raises(FrptError, match=r"--device cuda:3: CUDA device 3 does not exist \(2 present\): .*cuda:0..1"):
        _check_gpu_ordinal(parse_device("cuda:3"), gpu)
    with pytest.raises(FrptError, match="CUDA device 2 does not exist"):
        _check_gpu_ordinal(parse_device("cuda:2"), gpu)
    _check_gpu_ordinal(parse_device("cuda:1"), gpu)  # present
    _check_gpu_ordinal(parse_device("cuda:7"), ["CPUExecutionProvider"])  # no GPU provider: not counted

    def no_driver():
        raise FrptError("no CUDA driver")

    monkeypatch.setattr(cuda_memory, "device_count", no_driver)
    _check_gpu_ordinal(parse_device("cuda:7"), gpu)  # cannot count: ONNX Runtime reports it itself


# --- the export metadata reader -------------------------------------------------------------------------------


def test_metadata_reader_refuses_non_onnx_bytes(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\xff\xfe this is not a protobuf \x00\x01")
    with pytest.raises(FrptError, match=r"model.onnx is not a readable ONNX file \(malformed protobuf\): export"):
        read_graph_facts(path)
    with pytest.raises(FrptError, match="ONNX file not found"):
        read_graph_facts(tmp_path / "absent.onnx")


def test_metadata_reader_on_a_graph_without_frpt_metadata(tmp_path):
    path = tmp_path / "plain.onnx"
    make_toy_onnx(path, metadata={"producer": "someone else"})
    with pytest.raises(FrptError, match="no frpt.config, .* metadata: not written by frpt-export; re-export it"):
        read_graph_facts(path)
    plugin = tmp_path / "plugin.onnx"
    make_toy_onnx(plugin, plugin_node=True, metadata=toy_metadata(lowering="plugin"))
    facts = read_graph_facts(plugin)
    assert (
        facts.plugin_required and facts.sha256 == sha256_file(plugin) and facts.props == toy_metadata(lowering="plugin")
    )
    standard = tmp_path / "standard.onnx"
    make_toy_onnx(standard)
    assert not read_graph_facts(standard).plugin_required


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("frpt.config", "{not json", r"unreadable frpt.config metadata \(not JSON\); re-export it"),
        ("frpt.precision", "int8", r"frpt.precision is 'int8', expected one of fp32, fp16; re-export it"),
        ("frpt.lowering", "magic", r"frpt.lowering is 'magic', expected one of"),
        ("frpt.config", json.dumps({"input_size": 0}), r"frpt.config metadata: invalid frpt model config: input_size"),
    ],
)
def test_export_metadata_refuses_bad_values(key, value, message):
    props = {**toy_metadata(), key: value}
    with pytest.raises(FrptError, match=message):
        ExportMetadata.from_props(props, "model.onnx")


def test_export_metadata_reads_every_field():
    meta = ExportMetadata.from_props({**toy_metadata(precision="fp16"), "frpt.saliency_precision": "fp32"}, "m")
    assert (meta.precision, meta.lowering.value, meta.opset, meta.toolkit_version) == ("fp16", "standard", 17, "0.1.0")
    assert meta.saliency_precision == "fp32" and meta.config.input_size == TOY_SIZE
    assert ExportMetadata.from_props(toy_metadata(), "m").saliency_precision is None


def test_metadata_reader_names_the_decoder_error_onnx_raised(tmp_path, monkeypatch):
    path = tmp_path / "model.onnx"
    make_toy_onnx(path)

    class DecodeError(Exception):
        pass

    def refuse(*args, **kwargs):
        raise DecodeError("Error parsing message")

    monkeypatch.setattr(onnx, "load_model", refuse)
    with pytest.raises(FrptError, match=r"model.onnx is not a readable ONNX file \(DecodeError\): export it again$"):
        read_graph_facts(path)
