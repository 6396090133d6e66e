"""Mutation testing of the numeric and file-format core: plant one small bug at a time, run the tests that reach it.

Usage (from the repository root, with the project's venv)::

    .venv/bin/python scripts/mutation.py                    # every module in MODULES
    .venv/bin/python scripts/mutation.py runtime/frpt_runtime/parity.py --jobs 2
    .venv/bin/python scripts/mutation.py frpt/cah.py --show 12   # print mutant 12 of that module
    .venv/bin/python scripts/mutation.py --json mutation.json    # machine-readable results

For each module the script first runs its test files once under ``coverage`` with one context per test, which
gives, for every line, the tests that execute it (and checks that they pass unmutated). Then each mutant is
compiled from the module's AST with one change and run in a forked child of a process that imported the heavy
third-party packages once: an import hook serves the mutated code under the module's own name (nothing is written
to disk, so an interrupted run leaves the tree untouched), and pytest runs only the tests that execute the mutated
line, fastest first, stopping at the first failure. A mutant is *killed* when a test fails (or errors, or the run
exceeds its time limit), *survived* when all its tests pass, *uncovered* when no selected test executes its line.
Survivors listed in ``EQUIVALENT`` (with the reason each cannot be told apart by any test) are reported as such.

Mutations (one per mutant): arithmetic operator swaps (``+ -``, ``* /``, ``// /``, ``** *``, ``<< >>``, ``& |``),
comparison swaps (``< <=``, ``> >=``, ``== !=``, ``is``/``is not``, ``in``/``not in``), ``and``/``or``, dropping a
``not`` or a unary minus, negating a bare ``if``/``while`` condition, integers ``n -> n + 1`` and ``n - 1``, floats
``x -> 2x`` and ``x / 2`` (``0.0 -> 1.0``), ``True``/``False``, ``min``/``max`` and ``any``/``all``, replacing a
``raise`` or a call statement by ``pass`` (a skipped check or side effect), ``break``/``continue``, and dropping
one entry of a dict literal (a field missing from a record). Docstrings, strings, annotations, ``__all__`` and
``assert`` statements are never mutated.

Not part of the CI run (``scripts/test.sh``): the full run takes tens of minutes on two cores. README.md's
development section gives the command and the score table is in the issue's closing note.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import importlib.abc
import importlib.util
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = (".", "export", "runtime")

# module file -> the test files that hold its claims (the run is restricted to these; subprocess tests run the
# code on disk, not the mutant, so only in-process tests can kill a mutant: the console-script files are not listed,
# their tests take minutes per mutant and cannot kill one).
MODULES: dict[str, list[str]] = {
    "frpt/sampling.py": ["tests/test_sampling.py", "tests/test_cov_model.py"],
    "frpt/cah.py": ["tests/test_model.py", "tests/test_lowering.py", "tests/test_cov_model.py"],
    "runtime/frpt_runtime/metrics.py": ["tests/test_metrics.py", "tests/test_cov_numeric.py"],
    "runtime/frpt_runtime/parity.py": ["tests/test_parity.py", "tests/test_cov_numeric.py"],
    "runtime/frpt_runtime/bundle.py": [
        "tests/test_bundle.py",
        "tests/test_cov_bundle.py",
        "tests/test_cov_bundle_meta.py",
    ],
    "runtime/frpt_runtime/manifest.py": [
        "tests/test_cov_journal.py",
        "tests/test_fields.py",
        "tests/test_cov_manifest.py",
    ],
    "runtime/frpt_runtime/journal.py": ["tests/test_cov_journal.py", "tests/test_fields.py"],
    "runtime/frpt_runtime/images.py": ["tests/test_images.py", "tests/test_cov_images.py"],
    "runtime/frpt_runtime/fields.py": ["tests/test_fields.py", "tests/test_bundle.py"],
    "runtime/frpt_runtime/contract.py": [
        "tests/test_runtime_backends.py",
        "tests/test_bundle.py",
        "tests/test_cov_bundle.py",
        "tests/test_cov_contract.py",
        "tests/test_cov_lowering.py",
    ],
    "runtime/frpt_runtime/engine_sidecar.py": [
        "tests/test_bundle.py",
        "tests/test_runtime_trt_simulated.py",
        "tests/test_cov_bundle.py",
        "tests/test_cov_sidecar.py",
    ],
    "runtime/frpt_runtime/sampling_matrices.py": [
        "tests/test_sampling.py",
        "tests/test_lowering.py",
        "tests/test_cov_sampling_matrices.py",
    ],
    "export/frpt_export/lowering.py": ["tests/test_lowering.py", "tests/test_cov_lowering.py"],
}

# Survivors no test can tell apart from the original, keyed by (module, stripped source line, mutation): the reason.
_METRICS, _PARITY = "runtime/frpt_runtime/metrics.py", "runtime/frpt_runtime/parity.py"
_IMAGES = "runtime/frpt_runtime/images.py"
_JOURNAL = "runtime/frpt_runtime/journal.py"
_MANIFEST, _CONTRACT = "runtime/frpt_runtime/manifest.py", "runtime/frpt_runtime/contract.py"
_BUNDLE = "runtime/frpt_runtime/bundle.py"
_LOWERING, _SAMPLING = "export/frpt_export/lowering.py", "frpt/sampling.py"
_MATRICES = "runtime/frpt_runtime/sampling_matrices.py"
_FLOOR = (
    "the clamp never binds: src <= in_size - 1 with align_corners (exactly in_size - 1 at the last output), "
    "src < in_size - 1/2 without, so floor(src) <= in_size - 1 already; a looser bound changes nothing"
)
_BUFFER = (
    "persistent only decides whether the constant matrix is in the module's state_dict: the lowered copy is only "
    "traced to ONNX (a buffer of either kind becomes the same initialiser), never saved or loaded"
)
_JOURNAL_LINE = 'return utf8_json(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\\n")'
_CLOSE = (
    "acceptable: every append was flushed and fsync'd, so an unclosed handle changes no byte; only a descriptor "
    "stays open until garbage collection"
)
_DURABLE = (
    "an fsync only matters after a power loss: no test (nor kill -9, which keeps the page cache) can observe it; "
    "the write order it makes durable is the kill trial's"
)
_UNIT_NN = "unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-300)"
_COS_FLOOR = "den = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-300)"
_ZERO_ROW = "the floor only matters for a zero or subnormal row (cosine 0 or ~0 either way), never a model's embedding"
_UNIT = "unit = emb / np.maximum(norms, 1e-12)"
_PARITY_JSON = "return json.dumps(self.to_dict(), indent=2, sort_keys=True)"
_TINY = (
    "the floor only changes rows shorter than 1e-12 (x2 or /2): such a row is zero to float precision and ranks "
    "the same; Recall@K of degenerate embeddings is not a claim"
)
_LAYOUT = (
    "JSON layout only (indent, key order): from_dict(json.loads(...)) reads the same report; no reader parses the text"
)
EQUIVALENT: dict[tuple[str, str, str], str] = {
    (_METRICS, _UNIT, "1e-12 -> 2e-12"): _TINY,
    (_METRICS, _UNIT, "1e-12 -> 5e-13"): _TINY,
    (_PARITY, _PARITY_JSON, "2 -> 3"): _LAYOUT,
    (_PARITY, _PARITY_JSON, "2 -> 1"): _LAYOUT,
    (_PARITY, _PARITY_JSON, "True -> False"): _LAYOUT,
    (_PARITY, "agree = ref_sim[rows, cand_nn] >= ref_sim[rows, ref_nn] - _TIE_TOL", ">= -> >"): (
        "differs only when two float64 similarities differ by exactly _TIE_TOL; the tolerance itself is pinned"
    ),
    (_IMAGES, "_WHITE = (255, 255, 255)", "255 -> 256"): "PIL clips a fill colour to 255: the same white canvas",
    (_IMAGES, 'canvas = Image.new("RGBA", rgba.size, (*_WHITE, 255))', "255 -> 256"): (
        "PIL clips a fill colour to 255: the same opaque canvas"
    ),
    (_PARITY, "cos = np.where(row_ok, _cosines(ref, np.where(finite, cand, 0.0)), -1.0)", "0.0 -> 1.0"): (
        "the filler only enters rows holding a non-finite value, whose cosine is then replaced by -1"
    ),
    (_PARITY, "return sim, np.argmax(sim, axis=1)", "1 -> 0"): "sim is symmetric: column and row arg-max agree",
    (_PARITY, "passed=_verdict(str(precision), max_abs, min_cos, top1, nan_count + inf_count),", "+ -> -"): (
        "a non-finite candidate also makes max |Δ| inf and its row's cosine -1, so both verdicts fail anyway"
    ),
    (_PARITY, _UNIT_NN, "1e-300 -> 2e-300"): _ZERO_ROW,
    (_PARITY, _UNIT_NN, "1e-300 -> 5e-301"): _ZERO_ROW,
    (_PARITY, _COS_FLOOR, "1e-300 -> 2e-300"): _ZERO_ROW,
    (_JOURNAL, _JOURNAL_LINE, "False -> True"): (
        "ASCII escapes or raw UTF-8 in a journal line: json.loads reads the same names back"
    ),
    (_JOURNAL, "self.folder.mkdir(parents=True)", "True -> False"): (
        "the caller holds OUT's lock (frpt_runtime.out_lock), so OUT exists and only the partial folder is created"
    ),
    (_JOURNAL, "fsync_dir(self.folder)", "call statement -> pass"): _DURABLE,
    (_JOURNAL, "handle.close()", "call statement -> pass"): _CLOSE,
    (_JOURNAL, "return data.reshape(count, self.dim).astype(np.float32, copy=False)", "False -> True"): (
        "a copy or the array itself: the same float32 values"
    ),
    (_JOURNAL, "shutil.rmtree(self.folder, ignore_errors=True)", "True -> False"): (
        "acceptable: differs only when removing the finished run's partial folder fails, after the outputs were "
        "committed (the next run's start removes it again)"
    ),
    (_JOURNAL, "(self.folder / STATE_FILE).unlink(missing_ok=True)", "True -> False"): (
        "discard follows start(), which always writes state.json: the file is there"
    ),
    (_JOURNAL, "self.close()", "call statement -> pass"): _CLOSE,
    (_JOURNAL, "(self.folder / STATE_FILE).unlink(missing_ok=True)", "call statement -> pass"): (
        "acceptable: rmtree removes state.json anyway; removing it first only matters to a crash inside rmtree, "
        "which leaves a folder no resume reads (no test can stop rmtree half way)"
    ),
    (_JOURNAL, "if not rows.is_file() and self.row_count == 0:", "and -> or"): (
        "touching an existing rows file changes nothing, and a missing one with journaled rows is then refused as lost "
        "rows either way"
    ),
    (_JOURNAL, "break  # torn last line: the crash hit mid-append", "break -> continue"): (
        "only the last piece of splitlines(keepends=True) can lack its newline: nothing follows it"
    ),
    (_PARITY, _COS_FLOOR, "1e-300 -> 5e-301"): _ZERO_ROW,
    (_IMAGES, "if width <= height:", "<= -> <"): "a square image takes either branch to (short, short)",
    (_IMAGES, "gray = (np.clip(values.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)", "65535 -> 65534"): (
        "65534 and 65535 have the same high byte (255)"
    ),
    (_IMAGES, "gray = (np.clip(values.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)", "0 -> 1"): (
        "0 and 1 have the same high byte (0)"
    ),
    (_MANIFEST, "np.save(writer, embeddings, allow_pickle=False)", "False -> True"): (
        "allow_pickle only matters to object arrays; write_outputs is given float32 rows, saved byte for byte the same"
    ),
    (
        _BUNDLE,
        "split_rows(self.images, self.batch_sizes), split_rows(self.embeddings, self.batch_sizes), strict=True",
        "True -> False",
    ): ("both are split at the same cut points of one batch_sizes, so the two lists always have the same length"),
    (_BUNDLE, '"meta": np.array(json.dumps(bundle.meta, sort_keys=True)),', "True -> False"): (
        "key order of the meta JSON only: the meta property builds its dict in one fixed order, read back the same"
    ),
    (_BUNDLE, "if dtype != np.int64 or len(shape) != 1 or not 0 < shape[0] <= count:", "0 -> -1"): (
        "the index mutant shape[0] -> shape[-1]: the rank was checked to be 1 just before (the other '0 -> -1' "
        "of this line, -1 < B, is killed by the B = 0 header test)"
    ),
    (_BUNDLE, "meta = json.loads(str(np.lib.format.read_array(member, allow_pickle=False)))", "False -> True"): (
        "the header was checked to be a unicode scalar first: an object (pickled) meta never reaches read_array"
    ),
    (_BUNDLE, "arrays[key] = np.lib.format.read_array(member, allow_pickle=False)", "False -> True"): (
        "_check_headers admits only uint8 / float32 / int64 arrays: an object (pickled) array never reaches read_array"
    ),
    (_BUNDLE, "for key in _KEYS[:3]:", "3 -> 4"): (
        "also reads the meta array, whose size was bounded and which was parsed already; the result is not used"
    ),
    (_BUNDLE, 'reason = (str(exc).splitlines() or [""])[0]', "0 -> -1"): (
        "acceptable: which line of a multi-line reader error the message quotes (first or last); it stays one line "
        "either way, and the archive / npy / JSON errors the tests provoke are one line"
    ),
    (
        _LOWERING,
        'self.register_buffer("rh", _constant(bilinear_resize_matrix(in_hw[0], grid, True)), persistent=False)',
        "False -> True",
    ): _BUFFER,
    (
        _LOWERING,
        'self.register_buffer("rwt", _constant(bilinear_resize_matrix(in_hw[1], grid, True).T), persistent=False)',
        "False -> True",
    ): _BUFFER,
    (_LOWERING, 'self.register_buffer("m", _constant(m), persistent=False)', "False -> True"): _BUFFER,
    (_LOWERING, 'self.register_buffer("mt", _constant(m.T), persistent=False)', "False -> True"): _BUFFER,
    (_LOWERING, 'self.register_buffer("d", _constant(d), persistent=False)', "False -> True"): _BUFFER,
    (_LOWERING, 'self.register_buffer("dt", _constant(d.T), persistent=False)', "False -> True"): _BUFFER,
    (
        _LOWERING,
        'self.register_buffer("uh", _constant(bilinear_resize_matrix(grid, out_hw[0], False)), persistent=False)',
        "False -> True",
    ): _BUFFER,
    (
        _LOWERING,
        'self.register_buffer("uwt", _constant(bilinear_resize_matrix(grid, out_hw[1], False).T), persistent=False)',
        "False -> True",
    ): _BUFFER,
    (_LOWERING, "a = saliency.float()[:, 0]  # [N, g, g]", "0 -> -1"): (
        "the saliency map has one channel ([N, 1, g, g]): channel 0 is channel -1"
    ),
    (_SAMPLING, "return torch.stack((gx[:, 0], gy[:, 0]), dim=-1)", "0 -> -1"): (
        "gx and gy are [N, 1, g, g]: channel 0 is channel -1"
    ),
    (_SAMPLING, "stacked = torch.cat((a_pad, px * a_pad, py * a_pad), dim=1)  # [N, 3, G, G]", "1 -> 2"): (
        "[N, 1, 3G, G] and [N, 3, G, G] hold the same contiguous memory: the reshape to [3N, 1, G, G] that follows "
        "gives the same maps in the same order"
    ),
    (_MATRICES, "a = saliency.astype(np.float32)[:, 0]", "0 -> -1"): (
        "the saliency map has one channel ([N, 1, g, g]): channel 0 is channel -1"
    ),
    (_MATRICES, "values = image[batch, :, np.clip(cy, 0, h - 1), np.clip(cx, 0, w - 1)]  # [N, h, w, C]", "0 -> -1"): (
        "a corner index below 0 is outside the image: its value is read at index -1 instead of 0, then discarded by "
        "the inside mask (np.where picks 0.0, whatever the value)"
    ),
    (_SAMPLING, "g = saliency.shape[-1]", "1 -> 2"): (
        "shape[-2] is shape[-1]: the line before refuses a saliency that is not square"
    ),
    (
        _SAMPLING,
        "out = F.conv2d(stacked.reshape(-1, 1, *a_pad.shape[-2:]), kernel).view(saliency.shape[0], 3, 1, g, g)",
        "drop unary -",
    ): (
        "a_pad is 4-D, so shape[2:] is shape[-2:] (the other 'drop unary -' of this line, reshape(1, ...), cannot hold "
        "3N maps and is killed)"
    ),
    (_MATRICES, "i0 = min(math.floor(src), in_size - 1)", "- -> +"): _FLOOR,
    (_MATRICES, "i0 = min(math.floor(src), in_size - 1)", "1 -> 0"): _FLOOR,
    (_MATRICES, "g = saliency.shape[-1]", "1 -> 2"): (
        "shape[-2] is shape[-1] for the square maps the op is given; a map that is not square fails the products "
        "m @ a @ m.T either way"
    ),
    (_MATRICES, "grid = np.where(bad[..., None], 0.0, grid)", "0.0 -> 1.0"): (
        "the filler only feeds grid points whose output is set to NaN at the end; 1.0 is inside the image as 0.0 is"
    ),
    (_IMAGES, "image.load()", "call statement -> pass"): (
        "PIL decodes lazily at the first pixel access (exif_transpose / convert), inside the same try: the same "
        "errors, the same pixels"
    ),
}

# Imported once in the parent so every forked child shares them (project modules are never imported there).
PRELOAD = ("numpy", "PIL.Image", "typer", "tqdm", "pytest", "coverage", "onnx", "onnxruntime", "torch", "timm")

_BINOPS = {
    ast.Add: [ast.Sub],
    ast.Sub: [ast.Add],
    ast.Mult: [ast.Div],
    ast.Div: [ast.Mult],
    ast.FloorDiv: [ast.Div],
    ast.Mod: [ast.FloorDiv],
    ast.Pow: [ast.Mult],
    ast.LShift: [ast.RShift],
    ast.RShift: [ast.LShift],
    ast.BitAnd: [ast.BitOr],
    ast.BitOr: [ast.BitAnd],
}
_CMPOPS = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_SYMBOL = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
    ast.LShift: "<<", ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
    ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in",
    ast.NotIn: "not in", ast.And: "and", ast.Or: "or",
}  # fmt: skip
_NAME_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any"}


@dataclass
class Mutant:
    """One planted change: where (1-based line), what, and its outcome once run."""

    index: int
    line: int
    description: str
    source_line: str = ""
    status: str = "pending"  # killed | survived | uncovered | timeout | equivalent
    tests_run: int = 0
    seconds: float = 0.0
    reason: str = ""


def _is_docstring(node: ast.AST, parent: ast.AST | None) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and isinstance(parent, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    )


def _children(node: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """Child nodes to visit, skipping annotations, ``__all__``, asserts, f-strings and docstrings."""
    for name, value in ast.iter_fields(node):
        if name in ("annotation", "returns", "type_comment"):
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, ast.AST) or isinstance(item, ast.Assert | ast.JoinedStr):
                continue
            if _is_docstring(item, node):
                continue
            if isinstance(item, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in ("__all__", "__version__") for t in item.targets
            ):
                continue
            yield name, item


def _walk(node: ast.AST, parent: ast.AST | None = None) -> Iterator[tuple[ast.AST, ast.AST | None]]:
    yield node, parent
    for _, child in _children(node):
        yield from _walk(child, node)


def _candidates(node: ast.AST, parent: ast.AST | None) -> list[tuple[str, Any]]:
    """``(description, apply)`` pairs for ``node``; ``apply(node, parent)`` changes the tree in place."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, ast.BinOp):
        for new in _BINOPS.get(type(node.op), []):
            old = _SYMBOL[type(node.op)]
            found.append((f"{old} -> {_SYMBOL[new]}", lambda n, p, new=new: setattr(n, "op", new())))
    elif isinstance(node, ast.AugAssign) and type(node.op) in _BINOPS:
        for new in _BINOPS[type(node.op)]:
            old = _SYMBOL[type(node.op)]
            found.append((f"{old}= -> {_SYMBOL[new]}=", lambda n, p, new=new: setattr(n, "op", new())))
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            new = _CMPOPS.get(type(op))
            if new is not None:
                found.append(
                    (f"{_SYMBOL[type(op)]} -> {_SYMBOL[new]}", lambda n, p, i=i, new=new: n.ops.__setitem__(i, new()))
                )
    elif isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        found.append((f"{_SYMBOL[type(node.op)]} -> {_SYMBOL[new]}", lambda n, p, new=new: setattr(n, "op", new())))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        what = "drop not" if isinstance(node.op, ast.Not) else "drop unary -"
        found.append((what, lambda n, p: setattr(n, "op", ast.UAdd()) if isinstance(n.op, ast.USub) else _unwrap(n)))
    elif isinstance(node, ast.Constant) and not isinstance(parent, ast.JoinedStr):
        value = node.value
        if isinstance(value, bool):
            found.append((f"{value} -> {not value}", lambda n, p: setattr(n, "value", not n.value)))
        elif isinstance(value, int):
            found.append((f"{value} -> {value + 1}", lambda n, p: setattr(n, "value", n.value + 1)))
            found.append((f"{value} -> {value - 1}", lambda n, p: setattr(n, "value", n.value - 1)))
        elif isinstance(value, float):
            if value == 0.0:
                found.append(("0.0 -> 1.0", lambda n, p: setattr(n, "value", 1.0)))
            else:
                found.append((f"{value!r} -> {2 * value!r}", lambda n, p: setattr(n, "value", 2 * n.value)))
                found.append((f"{value!r} -> {value / 2!r}", lambda n, p: setattr(n, "value", n.value / 2)))
    elif isinstance(node, ast.Name) and node.id in _NAME_SWAPS and isinstance(parent, ast.Call) and parent.func is node:
        found.append((f"{node.id} -> {_NAME_SWAPS[node.id]}", lambda n, p: setattr(n, "id", _NAME_SWAPS[n.id])))
    elif isinstance(node, ast.If | ast.While | ast.IfExp) and not isinstance(node.test, ast.Compare | ast.UnaryOp):
        found.append(("negate condition", lambda n, p: setattr(n, "test", ast.UnaryOp(ast.Not(), n.test))))
    elif isinstance(node, ast.Raise):
        found.append(("raise -> pass", _to_pass))
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        found.append(("call statement -> pass", _to_pass))
    elif isinstance(node, ast.Break | ast.Continue):
        new = ast.Continue if isinstance(node, ast.Break) else ast.Break
        found.append(
            (f"{type(node).__name__.lower()} -> {new.__name__.lower()}", lambda n, p, new=new: _replace(n, p, new()))
        )
    elif isinstance(node, ast.Dict) and len(node.keys) >= 2 and None not in node.keys:
        for i, key in enumerate(node.keys):
            label = ast.unparse(key)
            found.append((f"drop dict entry {label}", lambda n, p, i=i: (n.keys.pop(i), n.values.pop(i))))
    return found


def _unwrap(node: ast.UnaryOp) -> None:
    """``not x`` -> ``not (not x)`` in place: the truth value of ``x``, i.e. the ``not`` dropped."""
    node.op = ast.Not()
    node.operand = ast.UnaryOp(ast.Not(), node.operand)


def _replace(node: ast.AST, parent: ast.AST, new: ast.AST) -> None:
    for _, value in ast.iter_fields(parent):
        if isinstance(value, list) and node in value:
            value[value.index(node)] = ast.copy_location(new, node)
            return
    raise RuntimeError("statement not found in its parent")


def _to_pass(node: ast.AST, parent: ast.AST) -> None:
    _replace(node, parent, ast.Pass())


def enumerate_mutants(source: str) -> list[Mutant]:
    """Every mutant of ``source``, in a deterministic order (the index :func:`mutated_code` takes)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    mutants: list[Mutant] = []
    for node, parent in _walk(tree):
        for description, _ in _candidates(node, parent):
            line = getattr(node, "lineno", 0)
            text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
            mutants.append(Mutant(len(mutants), line, description, text))
    return mutants


def mutated_tree(source: str, index: int) -> ast.Module:
    """The module's AST with mutant ``index`` applied."""
    tree = ast.parse(source)
    count = 0
    for node, parent in _walk(tree):
        for _, apply in _candidates(node, parent):
            if count == index:
                apply(node, parent)
                return ast.fix_missing_locations(tree)
            count += 1
    raise IndexError(f"no mutant {index}")


def module_name(path: str) -> str:
    """``runtime/frpt_runtime/parity.py`` -> ``frpt_runtime.parity``."""
    rel = Path(path)
    for root in sorted(SOURCE_ROOTS, key=len, reverse=True):
        if root != "." and rel.parts[0] == root:
            rel = Path(*rel.parts[1:])
            break
    return ".".join(rel.with_suffix("").parts)


class _MutantFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the compiled mutant under the module's own name and file."""

    def __init__(self, name: str, path: Path, code: Any) -> None:
        self.name, self.path, self.code = name, path, code

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        return importlib.util.spec_from_file_location(fullname, self.path, loader=self)

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        exec(self.code, module.__dict__)


class _Contexts:
    """pytest plugin: one coverage context per test, and each test's duration."""

    def __init__(self, cov: Any) -> None:
        self.cov = cov
        self.durations: dict[str, float] = {}
        self.failed: list[str] = []

    def pytest_runtest_setup(self, item: Any) -> None:
        self.cov.switch_context(item.nodeid)

    def pytest_runtest_logreport(self, report: Any) -> None:
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration
        if report.failed:
            self.failed.append(report.nodeid)


def _pytest_args(targets: list[str]) -> list[str]:
    return [*targets, "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--no-header"]


def _quiet() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


def _forked(run: Any, timeout: float) -> tuple[str, Any]:
    """Run ``run()`` in a forked child (its own process group); ``("ok", result)``, ``("timeout", None)`` or
    ``("crashed", exit status)``. The result travels back as JSON through a temp file."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = Path(handle.name)
    try:
        pid = os.fork()
        if pid == 0:  # child
            code = 3
            try:
                os.setpgid(0, 0)
                result_path.write_text(json.dumps(run()))
                code = 0
            finally:
                os._exit(code)
        deadline = time.monotonic() + timeout
        try:
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    _kill_group(pid)
                    return "timeout", None
                time.sleep(0.02)
        except KeyboardInterrupt:
            _kill_group(pid)
            raise
        if os.waitstatus_to_exitcode(status) != 0:
            return "crashed", os.waitstatus_to_exitcode(status)
        return "ok", json.loads(result_path.read_text())
    finally:
        result_path.unlink(missing_ok=True)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def baseline(path: str, tests: list[str], timeout: float) -> dict[str, Any]:
    """Run ``tests`` unmutated under coverage: ``{"lines": {line: [nodeid, ...]}, "durations": {...}}``."""

    def run() -> dict[str, Any]:
        import coverage
        import pytest

        _quiet()
        cov = coverage.Coverage(data_file=None, include=[str(ROOT / path)], branch=False)
        plugin = _Contexts(cov)
        cov.start()
        try:
            code = pytest.main(_pytest_args(tests), plugins=[plugin])
        finally:
            cov.stop()
        data = cov.get_data()
        lines = data.contexts_by_lineno(str(ROOT / path))
        return {"exit": int(code), "failed": plugin.failed, "lines": lines, "durations": plugin.durations}

    status, result = _forked(run, timeout)
    if status != "ok":
        raise SystemExit(f"{path}: the unmutated baseline run {status} ({result})")
    if result["exit"] != 0:
        raise SystemExit(f"{path}: tests fail without any mutation: {result['failed'][:5]}")
    return result


def run_mutant(path: str, source: str, index: int, tests: list[str], timeout: float) -> str:
    """Run mutant ``index`` against ``tests`` (node ids or files, in order, stopping at the first failure).

    Returns:
        ``killed`` (a test failed or errored, or collection broke), ``survived``, ``timeout``, ``crashed`` (the
        child died: counted as killed) or ``unselectable`` (pytest found none of the node ids).
    """
    name = module_name(path)
    code = compile(mutated_tree(source, index), str(ROOT / path), "exec")

    def run() -> dict[str, Any]:
        import pytest

        _quiet()
        sys.meta_path.insert(0, _MutantFinder(name, ROOT / path, code))
        return {"exit": int(pytest.main([*_pytest_args(tests), "-x"]))}

    status, result = _forked(run, timeout)
    if status != "ok":
        return status
    exit_code = result["exit"]
    if exit_code in (4, 5):  # usage error / no tests collected: a node id pytest cannot select
        return "unselectable"
    return "survived" if exit_code == 0 else "killed"


def _tests_for(line: int, lines: dict[str, list[str]], durations: dict[str, float], every: list[str]) -> list[str]:
    """Node ids executing ``line``, fastest first; ``every`` test of the run when only import-time code ran it (a
    constant is read through the modules that imported it, by tests that may execute no line of this module)."""
    contexts = [c for c in lines.get(str(line), []) if c]
    if not contexts and "" in lines.get(str(line), []):
        contexts = every
    return sorted(set(contexts), key=lambda c: durations.get(c, 0.0))


def _reaching(lines: dict[str, list[str]], durations: dict[str, float]) -> list[str]:
    """Every test (fastest first) of the files where at least one test executed a line of the module."""
    files = {context.split("::")[0] for contexts in lines.values() for context in contexts if context}
    return sorted((t for t in durations if t.split("::")[0] in files), key=lambda t: durations[t])


def mutate_module(path: str, tests: list[str], *, only: list[int] | None, factor: float) -> list[Mutant]:
    """Baseline, then every mutant of ``path``; prints one line per survivor as it goes.

    A mutant that survives the tests executing its line is run once more against every test of the files in which
    some test executed the module in-process (a module-scoped fixture runs the mutated code in the first test that
    needs it, while a later test of that file may hold the claim). Files none of whose tests reach the module in
    this process (console-script tests run the code on disk in a child) cannot tell a mutant apart: left out. A
    mutant of import-time code (a module constant) runs every test given, fastest first: another module imported
    the constant, and any test may read it through that module.
    """
    source = (ROOT / path).read_text(encoding="utf-8")
    mutants = enumerate_mutants(source)
    if only:
        mutants = [m for m in mutants if m.index in only]
    start = time.monotonic()
    base = baseline(path, tests, timeout=3600)
    lines, durations = {str(k): v for k, v in base["lines"].items()}, base["durations"]
    confirm = _reaching(lines, durations)
    total = sum(durations.get(t, 0.0) for t in confirm)
    print(f"{path}: {len(mutants)} mutants, baseline {time.monotonic() - start:.0f} s", file=sys.stderr)
    for mutant in mutants:
        tick = time.monotonic()
        selected = _tests_for(mutant.line, lines, durations, sorted(durations, key=lambda t: durations[t]))
        if not selected:
            mutant.status = "uncovered"
        else:
            budget = factor * sum(durations.get(t, 0.0) for t in selected) + 30.0
            status = run_mutant(path, source, mutant.index, selected, budget)
            mutant.tests_run = len(selected)
            if status in ("survived", "unselectable") and set(confirm) - set(selected):
                status = run_mutant(path, source, mutant.index, confirm, factor * total + 30.0)
                mutant.tests_run = len(confirm)
            mutant.status = {"crashed": "killed", "unselectable": "survived"}.get(status, status)
        mutant.seconds = round(time.monotonic() - tick, 2)
        key = (path, mutant.source_line, mutant.description)
        if mutant.status in ("survived", "uncovered") and key in EQUIVALENT:
            mutant.reason, mutant.status = EQUIVALENT[key], "equivalent"
        if mutant.status in ("survived", "uncovered"):
            print(f"  {mutant.status}: #{mutant.index} line {mutant.line}: {mutant.description}: "
                  f"{mutant.source_line}", file=sys.stderr)  # fmt: skip
    return mutants


@dataclass
class Score:
    module: str
    mutants: int = 0
    killed: int = 0
    survived: int = 0
    uncovered: int = 0
    equivalent: int = 0
    seconds: float = 0.0
    survivors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def percent(self) -> float:
        scored = self.mutants - self.equivalent
        return 100.0 * self.killed / scored if scored else 100.0


def score(path: str, mutants: list[Mutant], seconds: float) -> Score:
    result = Score(path, len(mutants), seconds=round(seconds, 1))
    for mutant in mutants:
        if mutant.status in ("killed", "timeout"):
            result.killed += 1
        elif mutant.status == "equivalent":
            result.equivalent += 1
        else:
            setattr(result, mutant.status, getattr(result, mutant.status) + 1)
        if mutant.status not in ("killed", "timeout"):
            result.survivors.append(asdict(mutant))
    return result


def _show(path: str, index: int) -> None:
    source = (ROOT / path).read_text(encoding="utf-8")
    mutant = enumerate_mutants(source)[index]
    original = ast.unparse(ast.parse(source)).splitlines()
    changed = ast.unparse(mutated_tree(source, index)).splitlines()
    print(f"#{index} line {mutant.line}: {mutant.description}: {mutant.source_line}")
    for before, after in zip(original, changed, strict=False):
        if before != after:
            print(f"- {before}\n+ {after}")
            break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="module files (default: every one in MODULES)")
    parser.add_argument("--tests", nargs="+", help="test files to use instead of the module's own list")
    parser.add_argument("--only", type=int, nargs="+", help="run only these mutant indices")
    parser.add_argument("--show", type=int, help="print this mutant of the (one) module and exit")
    parser.add_argument("--list", action="store_true", help="list the mutants of the modules and exit")
    parser.add_argument("--timeout-factor", type=float, default=4.0, help="limit = factor x baseline time + 30 s")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    sys.path[:0] = [str(ROOT / root) for root in SOURCE_ROOTS]
    modules = args.modules or list(MODULES)
    if args.show is not None:
        _show(modules[0], args.show)
        return 0
    if args.list:
        for path in modules:
            for m in enumerate_mutants((ROOT / path).read_text(encoding="utf-8")):
                print(f"{path}:{m.line}: #{m.index} {m.description}: {m.source_line}")
        return 0
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    assert not any(m.split(".")[0] in ("frpt", "frpt_export", "frpt_runtime") for m in sys.modules), "preloaded"
    scores = []
    for path in modules:
        start = time.monotonic()
        mutants = mutate_module(path, args.tests or MODULES[path], only=args.only, factor=args.timeout_factor)
        scores.append(score(path, mutants, time.monotonic() - start))
    width = max(len(s.module) for s in scores)
    print(f"{'module':<{width}}  mutants  killed  survived  uncovered  equivalent  score    time")
    for s in scores:
        print(
            f"{s.module:<{width}}  {s.mutants:>7}  {s.killed:>6}  {s.survived:>8}  {s.uncovered:>9}  "
            f"{s.equivalent:>10}  {s.percent:5.1f} %  {s.seconds:5.0f} s"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(s) | {"percent": round(s.percent, 1)} for s in scores], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
