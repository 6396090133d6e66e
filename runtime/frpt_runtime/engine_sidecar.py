"""Engine sidecar ``<plan>.json``: the facts a TensorRT plan cannot carry itself (torch-free).

A serialised engine only runs on the TensorRT version and GPU it was built for, and the runtime must know
the model config, precision and lowering without opening the ONNX file. The exporter writes this sidecar
atomically beside every plan, copying the ONNX file's ``frpt.*`` metadata verbatim (parsed by the contract's
one reader, :class:`~frpt_runtime.contract.ExportMetadata`); the runtime reads it and refuses a mismatched plan
before doing any work.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frpt_runtime.atomic import atomic_write_json
from frpt_runtime.contract import ExportMetadata, sidecar_path_for
from frpt_runtime.digests import sha256_file
from frpt_runtime.errors import FrptError
from frpt_runtime.fields import boolean, choice, hex_digest, integer, mapping, optional, read_fields, string
from frpt_runtime.trt_module import TRT_MODULES

__all__ = ["EngineSidecar", "check_compatible", "read_sidecar", "sha256_file", "write_sidecar"]

REBUILD = "rebuild the engine with `frpt-export trt`"
_SPEC = {
    "onnx_metadata": mapping(string(), string()),
    "trt_flavour": choice(TRT_MODULES),
    "trt_version": string(nonempty=True),
    "gpu_name": optional(string()),
    "compute_capability": optional(string()),
    "min_batch": integer(1),
    "opt_batch": integer(1),
    "max_batch": integer(1),
    "onnx_sha256": hex_digest(),
    "bundle_sha256": optional(hex_digest()),
    "plan_sha256": hex_digest(),
    "toolkit_version": string(),
    "plugin_required": boolean(),
}


@dataclass(frozen=True)
class EngineSidecar:
    """What was built, with what, for what.

    Attributes:
        onnx_metadata: the ``frpt.*`` metadata_props of the ONNX graph the engine was built from (model config,
            family, precision, lowering, opset, toolkit version); :attr:`metadata` parses them.
        trt_flavour: ``tensorrt`` | ``tensorrt_rtx``.
        trt_version: the builder's ``__version__``.
        gpu_name: name of the GPU the build ran on (``None`` on a CPU-only build machine).
        compute_capability: ``"major.minor"`` of the build GPU, or the TensorRT-RTX target name
            (e.g. ``"SM86"``) when built ahead of time without a GPU; ``None`` if unknown.
        min_batch, opt_batch, max_batch: the optimisation profile on ``images``.
        onnx_sha256: :func:`~frpt_runtime.onnx_files.model_sha256` of the source graph (external data included):
            the link to the reference bundle, whose ``model_sha256`` must be this.
        bundle_sha256: SHA-256 of the reference bundle beside the source graph at build time (``None`` if none
            was there, or it was made for another model); ``frpt-verify`` checks the bundle it is given against it.
        plan_sha256: hex digest of the plan.
        toolkit_version: toolkit that built it.
        plugin_required: whether the engine needs ``libfrpt_plugins`` loaded to deserialise.
    """

    onnx_metadata: dict[str, str]
    trt_flavour: str
    trt_version: str
    gpu_name: str | None
    compute_capability: str | None
    min_batch: int
    opt_batch: int
    max_batch: int
    onnx_sha256: str
    bundle_sha256: str | None
    plan_sha256: str
    toolkit_version: str
    plugin_required: bool

    def __post_init__(self) -> None:
        read_fields(self.to_dict(), _SPEC, "engine sidecar", REBUILD)
        self.metadata  # noqa: B018 - parse once here, so a bad sidecar is refused when it is read
        if not self.min_batch <= self.opt_batch <= self.max_batch:
            raise FrptError(
                f"engine sidecar batch range must satisfy 1 <= min <= opt <= max, got "
                f"{self.min_batch}/{self.opt_batch}/{self.max_batch}: {REBUILD}"
            )

    @property
    def metadata(self) -> ExportMetadata:
        """The build graph's metadata, parsed."""
        return ExportMetadata.from_props(self.onnx_metadata, "engine sidecar")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "engine sidecar") -> EngineSidecar:
        """Build from parsed JSON after checking every field's type and range (one line naming ``source``)."""
        read_fields(data, _SPEC, source, REBUILD)
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def write_sidecar(plan_path: str | os.PathLike, sidecar: EngineSidecar) -> Path:
    """Write ``<plan>.json`` atomically (temp file in the same folder, then rename). Returns its path."""
    path = sidecar_path_for(plan_path)
    atomic_write_json(path, sidecar.to_dict())
    return path


def read_sidecar(plan_path: str | os.PathLike) -> EngineSidecar:
    """Read ``<plan>.json`` for a plan.

    Raises:
        FrptError: sidecar missing or malformed.
    """
    path = sidecar_path_for(plan_path)
    if not path.is_file():
        raise FrptError(f"engine sidecar {path} not found: build the engine with `frpt-export trt`, which writes it")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FrptError(f"engine sidecar {path} is unreadable ({type(exc).__name__}): rebuild the engine") from exc
    return EngineSidecar.from_dict(data, f"engine sidecar {path}")


def check_compatible(
    sidecar: EngineSidecar, *, trt_flavour: str, trt_version: str, compute_capability: str | None
) -> None:
    """Refuse a plan built by another TensorRT (flavour or version) or for another GPU architecture.

    Args:
        sidecar: the plan's sidecar.
        trt_flavour, trt_version: the runtime's TensorRT module name and ``__version__``.
        compute_capability: ``"major.minor"`` of the GPU about to run the plan.

    Raises:
        FrptError: naming the mismatch and the rebuild command.
    """
    fix = "rebuild it on this box with `frpt-export trt --onnx model.onnx`"
    if (sidecar.trt_flavour, sidecar.trt_version) != (trt_flavour, trt_version):
        raise FrptError(
            f"engine built with {sidecar.trt_flavour} {sidecar.trt_version}, this is {trt_flavour} {trt_version}: {fix}"
        )
    built_cc = sidecar.compute_capability
    if built_cc and compute_capability and "." in built_cc and built_cc != compute_capability:
        raise FrptError(
            f"engine built for compute capability {built_cc} ({sidecar.gpu_name}), "
            f"this GPU is {compute_capability}: {fix}"
        )
