"""Read an exported graph's FRPT facts with ``onnx`` alone (torch-free: engines are built on edge boxes).

The facts are the ``metadata_props`` of docs/design.md §5, parsed by the contract's one reader
(:class:`frpt_runtime.contract.ExportMetadata`), whether the graph holds the plugin's custom node, and the
model's hash -- which first checks its external data locations (:mod:`frpt_runtime.onnx_files`), so no builder
ever opens a file outside the model's folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from frpt_runtime.contract import PLUGIN_DOMAIN, ExportMetadata
from frpt_runtime.errors import FrptError
from frpt_runtime.onnx_files import model_sha256

__all__ = ["GraphFacts", "read_graph_facts"]


@dataclass(frozen=True)
class GraphFacts:
    """What the engine builder needs to know about an exported graph.

    Attributes:
        metadata: the export's parsed metadata.
        props: the raw ``frpt.*`` metadata_props (copied verbatim into an engine's sidecar).
        plugin_required: whether the graph holds a ``frpt``-domain node (the plugin lowering).
        sha256: :func:`~frpt_runtime.onnx_files.model_sha256` of the file (external data included, checked).
    """

    metadata: ExportMetadata
    props: dict[str, str]
    plugin_required: bool
    sha256: str


def read_graph_facts(onnx_path: str | os.PathLike) -> GraphFacts:
    """Load ``onnx_path`` (without external data) and read its :class:`GraphFacts`.

    Raises:
        FrptError: missing file, not ONNX, external data outside the model's folder, or not an FRPT export.
    """
    import onnx

    path = Path(onnx_path)
    if not path.is_file():
        raise FrptError(f"ONNX file not found: {path}")
    digest = model_sha256(path)  # checks every external data location before anything else reads the model
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and others for non-ONNX bytes
        raise FrptError(f"{path} is not a readable ONNX file ({type(exc).__name__}): export it again") from None
    props = {p.key: p.value for p in proto.metadata_props if p.key.startswith("frpt.")}
    metadata = ExportMetadata.from_props(props, path)
    return GraphFacts(metadata, props, any(node.domain == PLUGIN_DOMAIN for node in proto.graph.node), digest)
