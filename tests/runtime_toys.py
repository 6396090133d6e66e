"""Toy models and files shared by the runtime tests (not a test module).

``make_toy_onnx`` builds a small graph with the export's I/O contract (uint8 ``images`` [N, S, S, 3] ->
float32 ``embedding`` [N, D], L2-normalised, ``metadata_props``): ``normalize(x / 255 @ W)``, so every
pixel's position matters and numpy gives the exact expected output (``toy_reference``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from frpt_runtime.bundle import RefBundle, save_bundle
from frpt_runtime.contract import Precision
from frpt_runtime.digests import sha256_file
from frpt_runtime.engine_sidecar import EngineSidecar, write_sidecar
from frpt_runtime.families.frpt import MIN_INPUT_SIZE, FRPTConfig
from frpt_runtime.image_files import list_images
from frpt_runtime.images import ImageDecodeError, load_image
from frpt_runtime.manifest import MANIFEST_FORMAT, RUN_FILE, write_outputs

TOY_SIZE, TOY_DIM = MIN_INPUT_SIZE, 8


def make_toy_onnx(
    path: Path,
    *,
    size: int = TOY_SIZE,
    dim: int = TOY_DIM,
    seed: int = 0,
    metadata: dict[str, str] | None = None,
    plugin_node: bool = False,
) -> np.ndarray:
    """Write the toy export to ``path``; return its weight matrix ``W`` float32 ``[S*S*3, D]``."""
    weights = np.random.default_rng(seed).standard_normal((size * size * 3, dim)).astype(np.float32)
    nodes = [
        helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["x", "flat_shape"], ["flat"]),
        helper.make_node("Div", ["flat", "scale"], ["unit"]),
        helper.make_node("MatMul", ["unit", "W"], ["raw"]),
        helper.make_node("LpNormalization", ["raw"], ["embedding"], axis=1, p=2),
    ]
    if plugin_node:  # a frpt::InhomogeneousSample on a side branch (valid inputs) makes it a plugin-lowered graph
        nodes += [
            helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2]),
            helper.make_node("ReduceMean", ["x_nchw"], ["mass"], axes=[1], keepdims=1),
            helper.make_node("Add", ["mass", "scale"], ["positive"]),
            helper.make_node("ReduceSum", ["positive", "grid_axes"], ["total"], keepdims=1),
            helper.make_node("Div", ["positive", "total"], ["saliency"]),
            helper.make_node(
                "InhomogeneousSample",
                ["x_nchw", "saliency"],
                ["unused"],
                domain="frpt",
                out_h=size,
                out_w=size,
                pad=30,
                fwhm=13.0,
                align_corners=1,
                plugin_version="1",
                plugin_namespace="frpt",
            ),
        ]
    inits = [
        numpy_helper.from_array(np.array([-1, size * size * 3], np.int64), "flat_shape"),
        numpy_helper.from_array(np.array(255.0, np.float32), "scale"),
        numpy_helper.from_array(weights, "W"),
    ]
    if plugin_node:
        inits.append(numpy_helper.from_array(np.array([2, 3], np.int64), "grid_axes"))
    graph = helper.make_graph(
        nodes,
        "toy_frpt",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", size, size, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        inits,
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("frpt", 1)] if plugin_node else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    if metadata is None:
        metadata = toy_metadata(size)
    helper.set_model_props(model, metadata)
    onnx.save(model, path)
    return weights


def toy_metadata(size: int = TOY_SIZE, precision: str = "fp32", lowering: str = "standard") -> dict[str, str]:
    config = FRPTConfig(input_size=size, crop_pct=1.0)
    return {
        "frpt.config": config.to_json(),
        "frpt.precision": precision,
        "frpt.lowering": lowering,
        "frpt.toolkit_version": "0.1.0",
        "frpt.opset": "17",
    }


def toy_reference(images: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """What the toy graph computes, in float64 numpy: ``normalize(images / 255 @ W)`` -> float32 ``[N, D]``."""
    raw = images.reshape(images.shape[0], -1).astype(np.float64) / 255.0 @ weights.astype(np.float64)
    return (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)


def sidecar_fields(**changes: object) -> dict[str, object]:
    """The fields of a valid engine sidecar (a fp16 toy export built by TensorRT 10.3 on an Orin), with ``changes``."""
    fields: dict[str, object] = dict(
        onnx_metadata=toy_metadata(precision="fp16"),
        trt_flavour="tensorrt",
        trt_version="10.3.0",
        gpu_name="Orin",
        compute_capability="8.7",
        min_batch=1,
        opt_batch=8,
        max_batch=16,
        onnx_sha256="0" * 64,
        bundle_sha256=None,
        plan_sha256="b" * 64,
        toolkit_version="0.1.0",
        plugin_required=False,
    )
    return {**fields, **changes}


def toy_sidecar(plan: Path, **changes: object) -> EngineSidecar:
    return EngineSidecar(**sidecar_fields(**{"plan_sha256": sha256_file(plan), **changes}))  # type: ignore[arg-type]


def toy_plan(tmp_path: Path, **changes: object) -> Path:
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"serialized engine bytes")
    write_sidecar(plan, toy_sidecar(plan, **changes))
    return plan


BAD_FILES = {"broken.jpg", "empty.png", "notes.png"}


def make_image_folder(root: Path, good: int = 9) -> Path:
    """``good`` decodable images of varied kinds in nested folders, plus a corrupt, a zero-byte and a non-image."""
    rng = np.random.default_rng(0)
    for i in range(good):
        pixels = rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)
        sub = root / f"class{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        if i % 3 == 0:
            Image.fromarray(pixels).save(sub / f"img{i}.jpg", quality=90)
        elif i % 3 == 1:
            rgba = np.concatenate([pixels, rng.integers(0, 256, (*pixels.shape[:2], 1), dtype=np.uint8)], axis=-1)
            Image.fromarray(rgba, mode="RGBA").save(sub / f"img{i}.png")
        else:
            Image.fromarray(pixels[..., 0], mode="L").save(sub / f"img{i}.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    (root / "empty.png").write_bytes(b"")
    (root / "notes.png").write_text("not an image")
    return root


def toy_bundle(path: Path, weights: np.ndarray, model: Path | str, noise: float = 0.0, precision: str = "fp32") -> Path:
    """A bundle made for ``model`` (a toy export, or the hex sha256 it names) holding ``noise`` on sample 4."""
    images = np.random.default_rng(5).integers(0, 256, (6, TOY_SIZE, TOY_SIZE, 3), dtype=np.uint8)
    embeddings = toy_reference(images, weights)
    if noise:
        embeddings[4] += noise
    config = FRPTConfig(input_size=TOY_SIZE, crop_pct=1.0)
    digest = model if isinstance(model, str) else sha256_file(model)
    save_bundle(path, RefBundle(images, embeddings, np.array([4, 2], np.int64), config, digest, Precision(precision)))
    return path


def expected_embeddings(folder: Path, weights: np.ndarray) -> tuple[list[str], np.ndarray]:
    """``(relative paths, toy embeddings)`` of the decodable images under ``folder``, in listing order."""
    names, pixels = [], []
    for path in list_images(folder):
        try:
            pixels.append(load_image(path, TOY_SIZE, 1.0, FRPTConfig().decoder))  # the toy config's decoder
            names.append(path.relative_to(folder).as_posix())
        except ImageDecodeError:
            pass
    return names, toy_reference(np.stack(pixels), weights)


def write_embed_output(out: Path, images: list[str], rows: np.ndarray, **changes: object) -> dict:
    """Write an ``frpt-embed``-style output (``embeddings.npy`` + a complete manifest) for ``images`` / ``rows``."""
    rows = np.asarray(rows, dtype=np.float32)
    manifest = {
        "format": MANIFEST_FORMAT,
        "toolkit_version": "0.1.0",
        "root": str(out / "images"),
        "count": len(images),
        "embedding_dim": int(rows.shape[1]),
        "images": list(images),
        "skipped": [],
        "model": {"path": str(out / "toy.onnx"), "sha256": "0" * 64},
        "backend": "onnxruntime",
        "backend_detail": {},
        "family": "frpt",
        "precision": "fp32",
        "lowering": "standard",
        "config": FRPTConfig(input_size=TOY_SIZE, crop_pct=1.0).to_dict(),
        "batch": 2,
        "timings_file": RUN_FILE,
        **changes,
    }
    out.mkdir(parents=True, exist_ok=True)
    return write_outputs(out, rows, manifest, {"wall_s": 0.0})
