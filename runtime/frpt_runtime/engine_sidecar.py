"""Engine sidecar ``<plan>.json``: the facts a TensorRT plan cannot carry itself (torch-free).

A serialised engine only runs on the TensorRT version and GPU it was built for, and the runtime must know
the model config, precision and lowering without opening the ONNX file. The exporter writes this sidecar
atomically beside every plan, copying the ONNX file's ``frpt.*`` metadata verbatim (parsed by the contract's
one reader, :class:`~frpt_runtime.contract.ExportMetadata`); the runtime reads it and refuses a mismatched plan
before doing any work.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frpt_runtime.atomic import atomic_write_json
from frpt_runtime.contract import DEFAULT_OPSET, ExportMetadata, MetaKey, sidecar_path_for
from frpt_runtime.errors import FrptError
from frpt_runtime.trt_module import TRT_MODULES

__all__ = ["EngineSidecar", "check_compatible", "read_sidecar", "sha256_file", "write_sidecar"]


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
        onnx_sha256, plan_sha256: hex digests of the source graph and of the plan.
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
    plan_sha256: str
    toolkit_version: str
    plugin_required: bool

    def __post_init__(self) -> None:
        if not isinstance(self.onnx_metadata, dict):
            raise FrptError("engine sidecar onnx_metadata is not an object: rebuild the engine with `frpt-export trt`")
        self.metadata  # noqa: B018 - parse once here, so a bad sidecar is refused when it is read
        if self.trt_flavour not in TRT_MODULES:
            raise FrptError(f"sidecar trt_flavour must be one of {TRT_MODULES}, got {self.trt_flavour!r}")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise FrptError(
                f"sidecar batch range must satisfy 1 <= min <= opt <= max, got "
                f"{self.min_batch}/{self.opt_batch}/{self.max_batch}"
            )

    @property
    def metadata(self) -> ExportMetadata:
        """The build graph's metadata, parsed."""
        return ExportMetadata.from_props(self.onnx_metadata, "engine sidecar")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineSidecar:
        if "onnx_metadata" not in data and {"config", "precision", "lowering"} <= set(data):
            data = _upgrade_first_format(data)
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise FrptError(f"engine sidecar lacks fields {missing}: rebuild the engine with `frpt-export trt`")
        return cls(**{n: data[n] for n in names})


def _upgrade_first_format(data: dict[str, Any]) -> dict[str, Any]:
    """A sidecar of the first format (config / precision / lowering fields, opset 17 implied) in today's shape."""
    old = dict(data)
    config, precision, lowering = old.pop("config"), old.pop("precision"), old.pop("lowering")
    old["onnx_metadata"] = {
        MetaKey.config.value: json.dumps(config, sort_keys=True),
        MetaKey.precision.value: str(precision),
        MetaKey.lowering.value: str(lowering),
        MetaKey.opset.value: str(DEFAULT_OPSET),
        MetaKey.toolkit_version.value: str(old.get("toolkit_version", "")),
    }
    return old


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    if not isinstance(data, dict):
        raise FrptError(f"engine sidecar {path} is not a JSON object: rebuild the engine")
    return EngineSidecar.from_dict(data)


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
