"""The exported graph before and after the lean export, against what onnxslim / onnxsim make of it, and its speed.

For the pretrained Lite0 FRPT at 128 and 224 px, fp32 (standard lowering), fp16 (standard) and the plugin lowering
(fp32): node count and serialized size of

* ``before``  -- the export as it was: timm's TF-"same" padding traced as shape arithmetic, no graph optimiser
  (reproduced here by switching the two steps off: ``static_same_padding`` and ``optimize_graph``);
* ``default`` -- ``frpt-export onnx`` now (static padding, constant folding, the onnxscript optimiser);
* ``slim`` / ``sim`` -- onnxslim 0.1.98 / onnxsim 0.8.1 applied to the default export (onnxsim cannot evaluate the
  plugin node, so it is not run on plugin graphs).

Then ONNX Runtime CPU (threads = cores) on the fp32 graphs at batch 16: ``before`` vs ``default`` vs
``slim(default)``, A/B interleaved in one process, medians and the spread of the repetitions.

Usage: ``python benchmarks/bench_graph.py [--sizes 128 224] [--reps 10]``
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "export"), str(REPO / "runtime")]

VARIANTS = {"fp32": ("standard", "fp32"), "fp16": ("standard", "fp16"), "plugin": ("plugin", "fp32")}


def export_graphs(model, lean: bool) -> dict[str, object]:
    """ModelProtos of each variant, with or without the lean steps."""
    from frpt_export import onnx_export
    from frpt_export.families import frpt as family
    from frpt_export.graph import LowerOptions
    from frpt_runtime.contract import Lowering, Precision

    saved = family.static_same_padding, onnx_export.optimize_graph
    if not lean:
        family.static_same_padding, onnx_export.optimize_graph = (lambda *_: 0), (lambda proto: proto)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {
                name: onnx_export._graph_proto(model, LowerOptions(Lowering(lo), Precision(pr)), 17)
                for name, (lo, pr) in VARIANTS.items()
            }
    finally:
        family.static_same_padding, onnx_export.optimize_graph = saved


def simplified(proto, name: str) -> dict[str, object]:
    import onnxsim
    import onnxslim

    out = {"slim": onnxslim.slim(copy.deepcopy(proto))}
    if name != "plugin":
        out["sim"] = onnxsim.simplify(copy.deepcopy(proto))[0]
    return out


def ort_ab(files: dict[str, Path], size: int, reps: int) -> dict[str, list[float]]:
    """Milliseconds per batch-16 run of each file, interleaved."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.log_severity_level = 3
    sessions = {
        name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for name, path in files.items()
    }
    x = np.random.default_rng(0).integers(0, 256, (16, size, size, 3), dtype=np.uint8)
    outputs = {name: s.run(None, {"images": x})[0] for name, s in sessions.items()}  # warm-up
    first = next(iter(outputs.values()))
    assert all(np.abs(o - first).max() < 1e-4 for o in outputs.values()), "the graphs disagree"
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(reps):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, {"images": x})
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    import onnx
    import torch

    from frpt.model import create_model
    from frpt_runtime.families.frpt import FRPTConfig

    print(
        f"{'graph':<14} {'before':>14} {'default':>14} {'slim(default)':>14} {'sim(default)':>14} {'default/slim':>12}"
    )
    with tempfile.TemporaryDirectory(prefix="frpt-graph-") as tmp:
        for size in args.sizes:
            torch.manual_seed(0)
            model = create_model(FRPTConfig(input_size=size, num_classes=10)).eval()
            before, after = export_graphs(model, lean=False), export_graphs(model, lean=True)
            for name in VARIANTS:
                simple = simplified(after[name], name)
                cells = [before[name], after[name], simple["slim"], simple.get("sim")]
                text = [f"{len(p.graph.node):5d} / {p.ByteSize() / 2**20:5.1f}M" if p else f"{'-':>14}" for p in cells]
                ratio = len(after[name].graph.node) / len(simple["slim"].graph.node)
                print(f"{name + f' {size}px':<14} " + " ".join(f"{t:>14}" for t in text) + f" {ratio:11.2f}x")
                if name == "fp32":
                    files = {"before": before[name], "default": after[name], "slim(default)": simple["slim"]}
                    paths = {}
                    for label, proto in files.items():
                        paths[label] = Path(tmp) / f"{label}_{size}.onnx"
                        onnx.save(proto, paths[label])
                    timing = ort_ab(paths, size, args.reps)
            med = {name: statistics.median(v) for name, v in timing.items()}
            spread = max(max(v) / min(v) for v in timing.values())
            print(
                f"  ORT CPU fp32 {size}px batch 16, {os.cpu_count()} threads, {args.reps} interleaved reps (spread "
                f"{spread:.2f}x): "
                + ", ".join(f"{name} {ms:.0f} ms" for name, ms in med.items())
                + f"; before/default {med['before'] / med['default']:.2f}x, slim/default "
                f"{med['slim(default)'] / med['default']:.2f}x"
            )


if __name__ == "__main__":
    main()
