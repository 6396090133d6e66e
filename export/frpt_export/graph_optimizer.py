"""The final graph pass of every export: the onnxscript optimiser (constant folding, dead code, shared constants).

The traced graph is lean by construction (static TF-"same" padding, :mod:`frpt_export.lowering`; the
TorchScript exporter's own constant folding); what the exporter still leaves is bookkeeping: ~140 ``Constant``
nodes (ReLU6's clip bounds, shape operands), ~66 ``Identity`` nodes (the saliency pass and the full pass share
the backbone's weights, and the exporter links the second use through an ``Identity``) and a few Casts and
Unsqueezes on constants. ``onnxscript.optimizer.optimize`` folds them: constants become initializers, shared
weights stay one initializer, constant subgraphs are folded (with ONNX shape inference), unused nodes go.

Why this optimiser (``onnxscript==0.7.2`` with ``onnx-ir==1.1.0``, the ``export`` extra), measured on the
EfficientNet-Lite0 FRPT graph at 128 px (fp32: 408 traced nodes -> 199):

* it is maintained by the ONNX / ONNX Runtime developers and is the pass PyTorch's dynamo-based ONNX exporter
  runs (``torch.onnx.export(..., dynamo=True, optimize=True)``); pure Python, no ONNX Runtime at export time;
* it keeps ``metadata_props``, the exporter's node names (``/stages.2/stages.2.0/conv_dw/Conv``; the few nodes
  its rewrite rules replace, e.g. a Conv whose zero bias it drops, are named here after the value they compute,
  which keeps the exporter's name: ``/parser/conv/Conv``), the ``images`` Cast first, the fp16 graph's Casts
  (no op changes dtype) and the ``frpt::InhomogeneousSample`` node of the plugin lowering (an unknown domain:
  left as it is);
* onnxslim 0.1.98 reaches the same node count (199) but removes the ``Identity`` links by copying the shared
  weights (+17 % file size, 15.4 -> 17.9 MB); onnxsim 0.8.1 evaluates constant subgraphs with ONNX Runtime and
  writes ~20 ``onnxsim.*`` entries into ``metadata_props``.

What the pass must keep is checked in ``tests/test_export.py``: the node count against onnxslim's (within 10 %),
each compute op's dtypes against the unoptimised trace (fp16 graphs), node names, the custom node, the I/O contract
and parity.
"""

from __future__ import annotations

from typing import Any

__all__ = ["optimize_graph"]


def optimize_graph(proto: Any) -> Any:
    """The optimised copy of an exported graph.

    Args:
        proto: ``onnx.ModelProto`` as traced (``images`` uint8 in, ``embedding`` float32 out).

    Returns:
        A new ``onnx.ModelProto`` computing the same function with the same inputs, outputs, opsets and
        ``metadata_props``.
    """
    from onnxscript import optimizer

    optimised = optimizer.optimize(proto)
    _name_rewritten_nodes(optimised)
    return optimised


def _name_rewritten_nodes(proto: Any) -> None:
    """Name each node the optimiser created (``node_<Op>_<i>``) after its first output (``/a/b/Op_output_0`` ->
    ``/a/b/Op``), where that name is the exporter's and still free."""
    taken = {node.name for node in proto.graph.node}
    for node in proto.graph.node:
        output = node.output[0] if node.output else ""
        readable = output.removesuffix("_output_0")
        if node.name.startswith("node_") and output.startswith("/") and readable not in taken:
            taken.add(readable)
            node.name = readable
