"""Checkpoint -> the one ONNX file every backend consumes, plus its reference bundle (docs/design.md §5).

Graph: ``images`` uint8 ``[N, S, S, 3]`` -> the model's own ``prepare`` (Cast -> Transpose -> /255 ->
(x - mean)/std) and ``embed`` chain, on a copy whose lowerable submodules the family's lowering swapped
(:mod:`frpt_export.families`) -> ``embedding`` float32 ``[N, D]``; batch axis dynamic; legacy TorchScript exporter at
opset 17 (GridSample needs >= 16; opset 20 renamed its mode and TensorRT's parser falls back to nearest,
NVIDIA/TensorRT#4646), with its constant folding, then :func:`~frpt_export.graph_optimizer.optimize_graph`
(the onnxscript optimiser; why that one: its module docstring).

FP16: expressed in the graph by the family's lowering (explicit Casts at known places), not by NVIDIA ModelOpt
AutoCast. Why: ``nvidia-modelopt`` drags a large dependency tree (and its own torch/onnx pins) into the exporter
for what is, here, a handful of Cast nodes. Everything numerically delicate stays float32 by construction and is
easy to audit in the lowering: for FRPT the saliency resize + softmax, the sampling grid and the image
resampling, CAH (SE weights and InstanceNorm statistics, the classic fp16 trap, NVIDIA/TensorRT#2691), pooling
and the L2 norm. The graph is strongly typed as exported, so TensorRT 10.x (strongly typed flag) and 11.x / RTX
build it unchanged.

FRPT's saliency pass (backbone up to the tap + parser) is float32 by default (``saliency_precision="fp32"``):
the DPP warp amplifies the tap's fp16 rounding (~0.5 % rms on EfficientNet-Lite0) into a moved sampling
grid. Measured on a 4-epoch synthetic-birds model (96 px): all-half min cosine 0.99901 and top-1 agreement
91.7 % on 48 held-out images (PyTorch half), 0.99843 on the photo bundle (ORT CPU); with the saliency pass
in float32, 0.99988 and 100 %. ``saliency_precision="fp16"`` puts it in half too (faster; check parity).

The file is written to a temp file beside ``out_path`` and renamed, so ``-o`` never holds half a model; the
bundle ``<stem>.ref.npz`` (bound to the written file by its sha256, with the exported precision and lowering) and
Polygraphy JSON files are written beside it, and the written file's parity is checked through the runtime's own
ONNX Runtime backend and verifier — the code path users run.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from frpt.checkpoint import load_checkpoint
from frpt_export.families import complete_options, lower_model
from frpt_export.graph import LowerOptions
from frpt_export.graph_optimizer import optimize_graph
from frpt_export.reference import reference_images, split_batches, torch_embeddings, write_polygraphy_json
from frpt_runtime import __version__
from frpt_runtime.atomic import atomic_write
from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from frpt_runtime.bundle import RefBundle, load_bundle, save_bundle
from frpt_runtime.contract import (
    BATCH_AXIS,
    DEFAULT_OPSET,
    INPUT_NAME,
    OUTPUT_NAME,
    PLUGIN_DOMAIN,
    PLUGIN_OPSET,
    SUPPORTED_OPSETS,
    ExportMetadata,
    Lowering,
    bundle_path_for,
    polygraphy_paths_for,
)
from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import MIN_INPUT_SIZE
from frpt_runtime.onnx_files import model_sha256
from frpt_runtime.output_paths import check_output_file
from frpt_runtime.parity import ParityReport
from frpt_runtime.verify import verify_backend

__all__ = ["ExportReport", "export_onnx"]


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and how its ONNX Runtime output compares with PyTorch fp32 on the bundle.

    Attributes:
        onnx_path, bundle_path, inputs_json, outputs_json: files written.
        family, lowering, precision, opset: graph facts.
        saliency_precision: FRPT graphs: the saliency pass's precision; ``None`` for families without one.
        num_nodes, size_bytes: graph size.
        input_size, embedding_dim: model geometry.
        parity: :class:`~frpt_runtime.parity.ParityReport` as a dict (ORT CPU vs PyTorch on the bundle).
        seconds: wall time of the export.
    """

    onnx_path: str
    bundle_path: str
    inputs_json: str
    outputs_json: str
    family: str
    lowering: str
    precision: str
    saliency_precision: str | None
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

    def failure(self) -> str | None:
        """The parity failure line (see :meth:`ParityReport.failure`), or ``None`` when it passed."""
        return ParityReport.from_dict(self.parity).failure()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def format(self) -> str:
        """Human summary: the files, the graph, then the parity table of ONNX Runtime vs PyTorch."""
        saliency = "" if self.saliency_precision is None else f" (saliency {self.saliency_precision})"
        return "\n".join(
            [
                f"onnx       {self.onnx_path}: {self.num_nodes} nodes, {self.size_bytes / 2**20:.1f} MiB, "
                f"{self.family} {self.precision}{saliency}, {self.lowering} lowering, "
                f"opset {self.opset}, "
                f"input {self.input_size}px, D={self.embedding_dim} ({self.seconds:.1f} s)",
                f"bundle     {self.bundle_path}",
                f"polygraphy {self.inputs_json}, {self.outputs_json}",
                "ONNX Runtime CPU vs PyTorch fp32 on the bundle:",
                ParityReport.from_dict(self.parity).format(),
            ]
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportReport:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def _check_opset(opset: int) -> None:
    if opset not in SUPPORTED_OPSETS:
        raise FrptError(
            f"--opset {opset} unsupported: GridSample needs >= 16 and TensorRT misreads opset >= 20; "
            f"use {DEFAULT_OPSET}"
        )


def _load_model(source: str | os.PathLike | nn.Module, out_path: Path) -> nn.Module:
    """The model to export, after refusing an ``-o`` that would overwrite the checkpoint."""
    if isinstance(source, nn.Module):
        return source.eval()
    if out_path.resolve() == Path(source).resolve():
        raise FrptError(f"-o {out_path} would overwrite the checkpoint {source}: choose another -o")
    return load_checkpoint(source)


def _trace(graph: nn.Module, size: int, opset: int, lowering: Lowering):
    """Trace ``graph`` (uint8 ``[N, S, S, 3]`` -> ``[N, D]``) to an ONNX ModelProto with a dynamic batch axis."""
    import onnx

    buffer = io.BytesIO()
    dummy = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    with torch.no_grad(), warnings.catch_warnings():
        # Known and intended, so not shown to users: the legacy TorchScript exporter is chosen on purpose
        # (opset 17 and the custom node's symbolic); shape checks are constant under a fixed model size;
        # InstanceNorm is parameter-free and uses the input's statistics by design.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*feature will be removed", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*operator 'instance_norm'", category=UserWarning)
        torch.onnx.export(
            graph,
            (dummy,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: BATCH_AXIS}, OUTPUT_NAME: {0: BATCH_AXIS}},
            opset_version=opset,
            custom_opsets={PLUGIN_DOMAIN: PLUGIN_OPSET} if lowering == Lowering.plugin else None,
            do_constant_folding=True,
            dynamo=False,
        )
    return onnx.load_from_string(buffer.getvalue())


def _graph_proto(model: nn.Module, options: LowerOptions, opset: int):
    """The checked ModelProto of ``model``: traced, optimised, output pinned to ``[batch, D]``, metadata set."""
    import onnx

    size = model.config.input_size
    try:
        proto = optimize_graph(_trace(lower_model(model, options), size, opset, options.lowering))
    except ValueError as exc:  # F.instance_norm refuses a 1x1 map at trace time (a model from before MIN_INPUT_SIZE)
        if "spatial element" not in str(exc):
            raise
        raise FrptError(
            f"input size {size} leaves a 1x1 feature map, whose InstanceNorm the ONNX export cannot trace: "
            f"train with --input-size >= {MIN_INPUT_SIZE}"
        ) from None
    dims = proto.graph.output[0].type.tensor_type.shape.dim  # the exporter leaves D symbolic after the L2 norm
    dims[0].dim_param = BATCH_AXIS
    dims[1].dim_value = model.embedding_dim
    meta = ExportMetadata(
        config=model.config,
        precision=options.precision,
        lowering=options.lowering,
        opset=opset,
        toolkit_version=__version__,
        saliency_precision=options.saliency_precision,
    )
    del proto.metadata_props[:]
    for key, value in sorted(meta.to_props().items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name, proto.producer_version = "frpt-toolkit", __version__
    onnx.checker.check_model(proto)
    return proto


def _write_references(
    model: nn.Module, out_path: Path, images: np.ndarray, options: LowerOptions
) -> tuple[Path, Path, Path]:
    """Bundle + Polygraphy files beside ``out_path``: ``images`` (uint8 ``[M, S, S, 3]``) and PyTorch's fp32
    embeddings for them, batched 1, 3, 8; the bundle is bound to the written file (its model hash) and records the
    exported precision and lowering."""
    batch_sizes = split_batches(len(images))
    reference = torch_embeddings(model, images, batch_sizes)
    bundle = RefBundle(
        images,
        reference,
        batch_sizes,
        model.config,
        model_sha256=model_sha256(out_path),
        precision=options.precision,
        lowering=options.lowering,
    )
    bundle_path = save_bundle(bundle_path_for(out_path), bundle)
    inputs_json, outputs_json = polygraphy_paths_for(out_path)
    write_polygraphy_json(inputs_json, outputs_json, images, reference, batch_sizes)
    return bundle_path, inputs_json, outputs_json


def export_onnx(
    source: str | os.PathLike | nn.Module,
    out_path: str | os.PathLike,
    options: LowerOptions | None = None,
    opset: int = DEFAULT_OPSET,
    ref_images: str | os.PathLike | None = None,
) -> ExportReport:
    """Export a checkpoint (or model) to ONNX, write its reference bundle and check parity through the runtime.

    Args:
        source: checkpoint path, or a model of a registered family.
        out_path: the ``.onnx`` file to write (atomically).
        options: lowering and precision (``saliency_precision``: FRPT fp16 graphs only); default standard fp32,
            completed with the family's defaults (:func:`frpt_export.families.complete_options`).
        opset: ONNX opset (17 recommended).
        ref_images: folder of reference images; ``None`` uses the photographs bundled with scikit-image.

    Returns:
        The :class:`ExportReport` (falsy when ONNX Runtime misses the parity thresholds; files are written anyway).

    Raises:
        FrptError: bad options (or options the model's family does not have: the plugin lowering or a saliency
            precision for a VPT model), missing/truncated/foreign checkpoint, no reference image. Nothing is
            written at ``out_path`` in that case.
    """
    start = time.perf_counter()
    _check_opset(opset)
    out_path = Path(out_path)
    check_output_file(out_path, "-o")
    model = _load_model(source, out_path)
    options = complete_options(model, options or LowerOptions())
    cfg = model.config
    images = reference_images(cfg.input_size, cfg.crop_pct, ref_images, decoder=cfg.decoder)
    proto = _graph_proto(model, options, opset)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out_path, lambda handle: handle.write(proto.SerializeToString()))
    bundle_path, inputs_json, outputs_json = _write_references(model, out_path, images, options)
    with OnnxRuntimeBackend(out_path) as backend:  # the written file, through what users run
        parity = verify_backend(backend, load_bundle(bundle_path))
    return ExportReport(
        onnx_path=str(out_path),
        bundle_path=str(bundle_path),
        inputs_json=str(inputs_json),
        outputs_json=str(outputs_json),
        family=model.config.family,
        lowering=options.lowering.value,
        precision=options.precision.value,
        saliency_precision=None if options.saliency_precision is None else options.saliency_precision.value,
        opset=opset,
        num_nodes=len(proto.graph.node),
        size_bytes=out_path.stat().st_size,
        input_size=model.config.input_size,
        embedding_dim=int(model.embedding_dim),
        parity=parity.to_dict(),
        seconds=time.perf_counter() - start,
    )
