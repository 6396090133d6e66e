"""Read an exported graph's FRPT facts with ``onnx`` alone (torch-free: engines are built on edge boxes).

``metadata_props`` written by :func:`frpt_export.onnx_export.export_onnx` (DESIGN.md §3): ``frpt.config``
(FRPTConfig JSON), ``frpt.toolkit_version``, ``frpt.lowering``, ``frpt.precision``, ``frpt.opset`` (required),
plus ``frpt.saliency_precision`` (informative: the saliency pass's precision in an fp16 graph).
"""

from __future__ import annotations

import os
from pathlib import Path

from frpt.errors import FrptError

__all__ = ["METADATA_KEYS", "PLUGIN_DOMAIN", "read_metadata", "has_custom_nodes", "read_graph_facts"]

METADATA_KEYS = ("frpt.config", "frpt.toolkit_version", "frpt.lowering", "frpt.precision", "frpt.opset")
PLUGIN_DOMAIN = "frpt"


def _load(path: Path):
    import onnx

    if not path.is_file():
        raise FrptError(f"ONNX file not found: {path}")
    try:
        return onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for non-ONNX bytes
        raise FrptError(f"{path} is not a readable ONNX file ({type(exc).__name__}): export it again") from None


def _metadata(proto, path: Path) -> dict[str, str]:
    meta = {p.key: p.value for p in proto.metadata_props if p.key.startswith("frpt.")}
    missing = [k for k in METADATA_KEYS if k not in meta]
    if missing:
        raise FrptError(f"{path} lacks FRPT metadata {missing}: export it with `frpt-export onnx`")
    return meta


def _has_custom_nodes(proto) -> bool:
    return any(node.domain == PLUGIN_DOMAIN for node in proto.graph.node)


def read_metadata(onnx_path: str | os.PathLike) -> dict[str, str]:
    """The ``frpt.*`` metadata_props of an exported file.

    Raises:
        FrptError: missing file, not ONNX, or not an FRPT export.
    """
    path = Path(onnx_path)
    return _metadata(_load(path), path)


def has_custom_nodes(onnx_path: str | os.PathLike) -> bool:
    """Whether the graph holds a ``frpt``-domain node (the plugin lowering)."""
    return _has_custom_nodes(_load(Path(onnx_path)))


def read_graph_facts(onnx_path: str | os.PathLike) -> tuple[dict[str, str], bool]:
    """:func:`read_metadata` and :func:`has_custom_nodes` from one load of the file."""
    path = Path(onnx_path)
    proto = _load(path)
    return _metadata(proto, path), _has_custom_nodes(proto)
