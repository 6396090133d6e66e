"""Checkpoint -> the one ONNX file every backend consumes, plus its reference bundle (DESIGN.md §3).

Graph: ``images`` uint8 ``[N, S, S, 3]`` -> Cast -> Transpose -> /255 -> (x - mean)/std -> backbone up to
the tap -> parser -> saliency (MatMul resize + softmax, float32) -> structure modification (lowering) ->
full backbone -> CAH -> head -> L2 normalise -> ``embedding`` float32 ``[N, D]``; batch axis dynamic;
legacy TorchScript exporter at opset 17 (GridSample needs >= 16; opset 20 renamed its mode and TensorRT's
parser falls back to nearest, NVIDIA/TensorRT#4646).

FP16: expressed in the graph by casting precisely in the torch wrapper, not by NVIDIA ModelOpt AutoCast.
Why: ``nvidia-modelopt`` drags a large dependency tree (and its own torch/onnx pins) into the exporter for
what is, here, a handful of Cast nodes at known places: the normalised image is cast to half before the
full backbone pass (its convolutions/activations in half) and the feature map back to float32. Everything
numerically delicate stays float32 by construction and is easy to audit in the wrapper: saliency resize +
softmax, the sampling grid and the image resampling, CAH (SE weights and InstanceNorm statistics, the
classic fp16 trap, NVIDIA/TensorRT#2691), pooling and the L2 norm. The graph is strongly typed as exported,
so TensorRT 10.x (strongly typed flag) and 11.x / RTX build it unchanged.

The saliency pass (backbone up to the tap + parser) is float32 by default (``saliency_precision="fp32"``):
the DPP warp amplifies the tap's fp16 rounding (~0.5 % rms on EfficientNet-Lite0) into a moved sampling
grid. Measured on a 4-epoch synthetic-birds model (96 px): all-half min cosine 0.99901 and top-1 agreement
91.7 % on 48 held-out images (PyTorch half), 0.99843 on the photo bundle (ORT CPU); with the saliency pass
in float32, 0.99988 and 100 %. ``saliency_precision="fp16"`` puts it in half too (faster; check parity).

The file is written to a temp file beside ``out_path`` and renamed, so ``-o`` never holds half a model; the
bundle ``<stem>.ref.npz`` and Polygraphy JSON files are written beside it.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from frpt import __version__
from frpt.checkpoint import load_checkpoint
from frpt.errors import FrptError
from frpt.output_paths import check_output_file
from frpt.model import FRPT
from frpt_export.lowering import LOWERINGS, PLUGIN_DOMAIN, InstanceNormCAH, SaliencyResize, make_sampler
from frpt_export.reference import (
    reference_images,
    session_embeddings,
    split_batches,
    torch_embeddings,
    write_polygraphy_json,
)
from frpt_runtime.bundle import RefBundle, bundle_path_for, save_bundle
from frpt_runtime.manifest import atomic_write
from frpt_runtime.parity import PRECISIONS, compare_embeddings

__all__ = ["EmbeddingGraph", "ExportReport", "export_onnx", "SUPPORTED_OPSETS"]

SUPPORTED_OPSETS = (16, 17, 18, 19)


class EmbeddingGraph(nn.Module):
    """The exported computation: uint8 images -> L2-normalised float32 embedding.

    Built from a trained :class:`FRPT` without modifying it (for fp16 the backbone and parser are copies).

    Args:
        model: the trained model (eval mode).
        lowering: ``standard`` (MatMul + GridSample) or ``plugin`` (one ``frpt::InhomogeneousSample`` node).
        precision: ``fp32`` or ``fp16`` (the full backbone pass in half, the rest float32).
        saliency_precision: with ``fp16``, the saliency pass (backbone to the tap + parser) in ``fp32``
            (default, accurate) or ``fp16``.

    Shapes: ``images`` uint8 ``[N, S, S, 3]`` -> float32 ``[N, D]``.
    """

    def __init__(self, model: FRPT, lowering: str, precision: str, saliency_precision: str = "fp32") -> None:
        super().__init__()
        cfg = model.config
        size = cfg.input_size
        self.model = model
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.tap_dtype = torch.float16 if precision == saliency_precision == "fp16" else torch.float32
        self.backbone = copy.deepcopy(model.backbone).to(self.dtype) if precision == "fp16" else model.backbone
        self.tap_backbone = self.backbone if self.tap_dtype == self.dtype else model.backbone
        self.parser = copy.deepcopy(model.parser).to(self.tap_dtype) if self.tap_dtype != torch.float32 else model.parser
        with torch.no_grad():
            tap_hw = tuple(model.backbone.forward_tap(torch.zeros(1, 3, size, size)).shape[-2:])
        self.saliency = SaliencyResize(tap_hw, cfg.grid)
        self.sampler = make_sampler(lowering, cfg.grid, cfg.pad, cfg.fwhm, (size, size))
        self.cah = InstanceNormCAH(model.cah)

    def forward(self, images: Tensor) -> Tensor:
        x = self.model.prepare(images)  # Cast -> Transpose -> normalise, float32
        logits = self.parser(self.tap_backbone.forward_tap(x.to(self.tap_dtype)))
        warped = self.sampler(x, self.saliency(logits.float()))  # float32 grid and resampling
        features = self.backbone.forward_features(warped.to(self.dtype)).float()
        return F.normalize(self.model.head(self.cah(features)), dim=1, eps=1e-12)


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and how its ONNX Runtime output compares with PyTorch fp32 on the bundle.

    Attributes:
        onnx_path, bundle_path, inputs_json, outputs_json: files written.
        lowering, precision, saliency_precision, opset: graph facts.
        num_nodes, size_bytes: graph size.
        input_size, embedding_dim: model geometry.
        parity: :class:`~frpt_runtime.parity.ParityReport` as a dict (ORT CPU vs PyTorch on the bundle).
        seconds: wall time of the export.
    """

    onnx_path: str
    bundle_path: str
    inputs_json: str
    outputs_json: str
    lowering: str
    precision: str
    saliency_precision: str
    opset: int
    num_nodes: int
    size_bytes: int
    input_size: int
    embedding_dim: int
    parity: dict[str, Any]
    seconds: float

    @property
    def passed(self) -> bool:
        return bool(self.parity["passed"])

    def __bool__(self) -> bool:
        return self.passed

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ExportReport":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def _load_model(source: str | os.PathLike | FRPT) -> FRPT:
    if isinstance(source, FRPT):
        return source.eval()
    return load_checkpoint(source)


def _check_options(lowering: str, precision: str, saliency_precision: str, opset: int) -> None:
    if lowering not in LOWERINGS:
        raise FrptError(f"--lowering must be one of {LOWERINGS}, got {lowering!r}")
    for name, value in (("--precision", precision), ("--saliency-precision", saliency_precision)):
        if value not in PRECISIONS:
            raise FrptError(f"{name} must be one of {PRECISIONS}, got {value!r}")
    if opset not in SUPPORTED_OPSETS:
        raise FrptError(
            f"--opset {opset} unsupported: GridSample needs >= 16 and TensorRT misreads opset >= 20; use 17"
        )


def _trace(graph: EmbeddingGraph, size: int, opset: int, lowering: str):
    import onnx

    buffer = io.BytesIO()
    dummy = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    with torch.no_grad(), warnings.catch_warnings():
        # Known and intended, so not shown to users: the legacy TorchScript exporter is chosen on purpose
        # (opset 17 and the custom node's symbolic); shape checks are constant under a fixed model size;
        # InstanceNorm is parameter-free and uses the input's statistics by design.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*operator 'instance_norm'", category=UserWarning)
        torch.onnx.export(
            graph,
            (dummy,),
            buffer,
            input_names=["images"],
            output_names=["embedding"],
            dynamic_axes={"images": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=opset,
            custom_opsets={PLUGIN_DOMAIN: 1} if lowering == "plugin" else None,
            do_constant_folding=True,
            dynamo=False,
        )
    return onnx.load_from_string(buffer.getvalue())


def _set_output_shape(proto, dim: int) -> None:
    """Pin the output to ``[batch, D]`` (the TorchScript exporter leaves ``D`` symbolic after the L2 norm)."""
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    dims[0].dim_param = "batch"
    dims[1].dim_value = dim


def _set_metadata(proto, model: FRPT, lowering: str, precision: str, saliency_precision: str, opset: int) -> None:
    values = {
        "frpt.saliency_precision": saliency_precision,
        "frpt.config": model.config.to_json(),
        "frpt.toolkit_version": __version__,
        "frpt.lowering": lowering,
        "frpt.precision": precision,
        "frpt.opset": str(opset),
    }
    del proto.metadata_props[:]
    for key in sorted(values):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, values[key]
    proto.producer_name, proto.producer_version = "frpt-toolkit", __version__


def export_onnx(
    source: str | os.PathLike | FRPT,
    out_path: str | os.PathLike,
    lowering: str = "standard",
    precision: str = "fp32",
    opset: int = 17,
    ref_images: str | os.PathLike | None = None,
    saliency_precision: str = "fp32",
) -> ExportReport:
    """Export a checkpoint (or model) to ONNX, write its reference bundle and check parity with PyTorch.

    Args:
        source: checkpoint path, or an :class:`FRPT` model.
        out_path: the ``.onnx`` file to write (atomically).
        lowering: ``standard`` or ``plugin``.
        precision: ``fp32`` or ``fp16`` (the graph's compute precision; I/O always uint8 in, float32 out).
        opset: ONNX opset (17 recommended).
        ref_images: folder of reference images; ``None`` uses the photographs bundled with scikit-image.
        saliency_precision: for ``fp16``, the saliency pass's precision (``fp32`` default, see module doc).

    Returns:
        The :class:`ExportReport` (falsy when ORT misses the parity thresholds; files are written anyway).

    Raises:
        FrptError: bad options, missing/truncated/foreign checkpoint, no reference image. Nothing is
            written at ``out_path`` in that case.
    """
    import onnx

    from frpt_export.ort_custom_op import create_session

    start = time.perf_counter()
    saliency_precision = saliency_precision if precision == "fp16" else "fp32"
    _check_options(lowering, precision, saliency_precision, opset)
    out_path = Path(out_path)
    check_output_file(out_path, "-o")
    if isinstance(source, (str, os.PathLike)) and out_path.resolve() == Path(source).resolve():
        raise FrptError(f"-o {out_path} would overwrite the checkpoint {source}: choose another -o")
    model = _load_model(source)
    cfg = model.config
    images = reference_images(cfg.input_size, cfg.crop_pct, ref_images)
    batch_sizes = split_batches(len(images))

    try:
        proto = _trace(
            EmbeddingGraph(model, lowering, precision, saliency_precision).eval(), cfg.input_size, opset, lowering
        )
    except ValueError as exc:  # F.instance_norm refuses a 1x1 map at trace time (PyTorch's own CAH does not)
        if "spatial element" not in str(exc):
            raise
        raise FrptError(
            f"input size {cfg.input_size} leaves a 1x1 feature map, whose InstanceNorm the ONNX export cannot "
            "trace: train with a larger --input-size (>= 64)"
        ) from None
    _set_output_shape(proto, model.embedding_dim)
    _set_metadata(proto, model, lowering, precision, saliency_precision, opset)
    onnx.checker.check_model(proto)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out_path, lambda handle: handle.write(proto.SerializeToString()))

    reference = torch_embeddings(model, images, batch_sizes)
    bundle_path = save_bundle(bundle_path_for(out_path), RefBundle(images, reference, batch_sizes, cfg))
    inputs_json = out_path.with_name(out_path.stem + ".ref.inputs.json")
    outputs_json = out_path.with_name(out_path.stem + ".ref.outputs.json")
    write_polygraphy_json(inputs_json, outputs_json, images, reference, batch_sizes)

    candidate = session_embeddings(create_session(out_path), images, batch_sizes)
    parity = compare_embeddings(reference, candidate, precision)
    return ExportReport(
        onnx_path=str(out_path),
        bundle_path=str(bundle_path),
        inputs_json=str(inputs_json),
        outputs_json=str(outputs_json),
        lowering=lowering,
        precision=precision,
        saliency_precision=saliency_precision,
        opset=opset,
        num_nodes=len(proto.graph.node),
        size_bytes=out_path.stat().st_size,
        input_size=cfg.input_size,
        embedding_dim=int(reference.shape[1]),
        parity=parity.to_dict(),
        seconds=time.perf_counter() - start,
    )
