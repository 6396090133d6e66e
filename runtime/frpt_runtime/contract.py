"""The contract between model, exporter, plugin and runtime: every name both sides of a file must agree on.

One module, torch-free, imported by all three layers (docs/design.md: ``frpt_runtime`` owns the contract):

* the graph's tensors: ``images`` uint8 ``[N, S, S, 3]`` RGB in, ``embedding`` float32 ``[N, D]`` L2-normalised
  out, batch axis ``batch`` (dynamic);
* the ``metadata_props`` keys an export carries and :class:`ExportMetadata`, the one typed reader of them (every
  backend, ``frpt-verify``, the engine builder and the engine sidecar parse an export's facts through it);
* precisions, lowerings and families as ``str`` Enums (the CLIs' choices are these Enums);
* the plugin's identity (ONNX domain / op type / version / namespace, the same constants the C++ plugin has);
* the ONNX opsets the exporter may write and the file suffixes of exports, engines, sidecars and bundles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from frpt_runtime.errors import FrptError
from frpt_runtime.families import DEFAULT_FAMILY, FAMILIES, ModelConfig, config_from_dict, family_of

__all__ = [
    "BATCH_AXIS",
    "BUNDLE_SUFFIX",
    "DEFAULT_OPSET",
    "ENGINE_SUFFIXES",
    "INPUT_NAME",
    "ONNX_SUFFIX",
    "OUTPUT_NAME",
    "PLAN_SUFFIX",
    "PLUGIN_DOMAIN",
    "PLUGIN_NAMESPACE",
    "PLUGIN_OP",
    "PLUGIN_OPSET",
    "PLUGIN_VERSION",
    "POLYGRAPHY_INPUTS_SUFFIX",
    "POLYGRAPHY_OUTPUTS_SUFFIX",
    "SIDECAR_SUFFIX",
    "SUPPORTED_OPSETS",
    "ExportMetadata",
    "Family",
    "Lowering",
    "MetaKey",
    "Precision",
    "StrChoice",
    "bundle_path_for",
    "is_engine_path",
    "polygraphy_paths_for",
    "sidecar_path_for",
]

# ---- the graph's tensors -----------------------------------------------------------------------------------
INPUT_NAME = "images"  # uint8 [N, S, S, 3] RGB, resized + centre-cropped to the model size by the runtime
OUTPUT_NAME = "embedding"  # float32 [N, D], L2-normalised
BATCH_AXIS = "batch"


class StrChoice(str, Enum):
    """A ``str`` Enum that prints as its value (``f"{Precision.fp16}"`` is ``fp16`` on every Python)."""

    def __str__(self) -> str:
        return str(self.value)


class Precision(StrChoice):
    """How the graph computes (I/O is uint8 in / float32 out either way)."""

    fp32 = "fp32"
    fp16 = "fp16"


class Lowering(StrChoice):
    """How DPP's structure modification is expressed in the graph."""

    standard = "standard"  # ordinary ONNX ops (MatMuls + GridSample)
    plugin = "plugin"  # one frpt::InhomogeneousSample node (the TensorRT plugin)


Family = StrChoice("Family", {name: name for name in FAMILIES})
Family.__doc__ = "The model families this toolkit knows (the keys of :data:`frpt_runtime.families.FAMILIES`)."


class MetaKey(StrChoice):
    """``metadata_props`` keys of an exported ONNX file."""

    config = "frpt.config"  # the family's model config, JSON
    family = "frpt.family"  # absent in files written before the VPT family: read as "frpt"
    toolkit_version = "frpt.toolkit_version"
    lowering = "frpt.lowering"
    precision = "frpt.precision"
    opset = "frpt.opset"
    saliency_precision = "frpt.saliency_precision"  # informative: the saliency pass's precision (FRPT fp16 graphs)


_REQUIRED_KEYS = (MetaKey.config, MetaKey.toolkit_version, MetaKey.lowering, MetaKey.precision, MetaKey.opset)

# ---- the plugin's identity (plugins/inhomogeneousSamplePlugin.h has the same constants) ------------------------
PLUGIN_DOMAIN = "frpt"
PLUGIN_OP = "InhomogeneousSample"
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = "frpt"
PLUGIN_OPSET = 1  # version of the custom ONNX domain

# ---- opsets: GridSample needs >= 16; at 20 its mode was renamed and TensorRT's parser falls back to nearest ---
DEFAULT_OPSET = 17
SUPPORTED_OPSETS = (16, 17, 18, 19)

# ---- file suffixes ---------------------------------------------------------------------------------------------
ONNX_SUFFIX = ".onnx"
PLAN_SUFFIX = ".plan"  # what the toolkit writes
ENGINE_SUFFIXES = (PLAN_SUFFIX, ".engine", ".trt")  # what it accepts as a TensorRT engine
SIDECAR_SUFFIX = ".json"  # model.plan -> model.plan.json
BUNDLE_SUFFIX = ".ref.npz"  # model.onnx -> model.ref.npz
POLYGRAPHY_INPUTS_SUFFIX = ".ref.inputs.json"
POLYGRAPHY_OUTPUTS_SUFFIX = ".ref.outputs.json"


def is_engine_path(path: str | Path) -> bool:
    """Whether ``path`` names a serialised TensorRT engine (by its suffix)."""
    return Path(path).suffix.lower() in ENGINE_SUFFIXES


def sidecar_path_for(plan_path: str | Path) -> Path:
    """``model.plan`` -> ``model.plan.json``."""
    p = Path(plan_path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def bundle_path_for(model_path: str | Path) -> Path:
    """``model.onnx`` (or ``model.plan``) -> ``model.ref.npz`` beside it."""
    p = Path(model_path)
    return p.with_name(p.stem + BUNDLE_SUFFIX)


def polygraphy_paths_for(model_path: str | Path) -> tuple[Path, Path]:
    """``model.onnx`` -> ``(model.ref.inputs.json, model.ref.outputs.json)`` beside it."""
    p = Path(model_path)
    return p.with_name(p.stem + POLYGRAPHY_INPUTS_SUFFIX), p.with_name(p.stem + POLYGRAPHY_OUTPUTS_SUFFIX)


@dataclass(frozen=True)
class ExportMetadata:
    """The facts an exported file carries about itself (``metadata_props`` of the ONNX, copied to sidecars).

    Attributes:
        config: the family's model config (input size, crop, ...); its class names the family.
        precision: how the graph computes.
        lowering: how DPP is expressed (``standard`` for families without DPP).
        opset: the ONNX opset the graph was written at.
        toolkit_version: the toolkit that exported it.
        saliency_precision: FRPT fp16 graphs: the saliency pass's precision; ``None`` where not recorded.
    """

    config: ModelConfig
    precision: Precision
    lowering: Lowering
    opset: int
    toolkit_version: str
    saliency_precision: Precision | None = None

    @property
    def family(self) -> str:
        return family_of(self.config)

    def to_props(self) -> dict[str, str]:
        """The ``metadata_props`` to write (sorted keys on output is the writer's business)."""
        props = {
            MetaKey.config.value: self.config.to_json(),
            MetaKey.family.value: self.family,
            MetaKey.toolkit_version.value: self.toolkit_version,
            MetaKey.lowering.value: self.lowering.value,
            MetaKey.precision.value: self.precision.value,
            MetaKey.opset.value: str(self.opset),
        }
        if self.saliency_precision is not None:
            props[MetaKey.saliency_precision.value] = self.saliency_precision.value
        return props

    @classmethod
    def from_props(cls, props: dict[str, str], source: str | Path) -> ExportMetadata:
        """Parse and validate an export's ``metadata_props`` (other keys are ignored).

        Args:
            props: key -> value strings.
            source: the file they came from, for the messages.

        Raises:
            FrptError: a key missing (not an ``frpt-export`` file), or a value of the wrong type or out of range.
        """
        missing = [key.value for key in _REQUIRED_KEYS if key.value not in props]
        if missing:
            raise FrptError(f"{source}: no {', '.join(missing)} metadata: not written by frpt-export; re-export it")
        family = props.get(MetaKey.family.value, DEFAULT_FAMILY)
        try:
            raw_config = json.loads(props[MetaKey.config.value])
        except ValueError:
            raise FrptError(f"{source}: unreadable {MetaKey.config.value} metadata (not JSON); re-export it") from None
        config = config_from_dict(family, raw_config, f"{source} {MetaKey.config.value} metadata")
        saliency = props.get(MetaKey.saliency_precision.value)
        return cls(
            config=config,
            precision=_enum(Precision, props[MetaKey.precision.value], MetaKey.precision, source),
            lowering=_enum(Lowering, props[MetaKey.lowering.value], MetaKey.lowering, source),
            opset=_opset(props[MetaKey.opset.value], source),
            toolkit_version=props[MetaKey.toolkit_version.value],
            saliency_precision=None
            if saliency is None
            else _enum(Precision, saliency, MetaKey.saliency_precision, source),
        )


def _enum(kind: type[Enum], value: Any, key: MetaKey, source: str | Path) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise FrptError(f"{source}: {key.value} is {value!r}, expected one of {choices}; re-export it") from None


def _opset(value: str, source: str | Path) -> int:
    if not value.isdigit() or int(value) not in SUPPORTED_OPSETS:
        raise FrptError(
            f"{source}: {MetaKey.opset.value} is {value!r}, expected one of {SUPPORTED_OPSETS}; re-export it"
        )
    return int(value)
