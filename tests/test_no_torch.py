"""The runtime imports and runs end to end where ``import torch`` fails (an edge box with no PyTorch).

A ``sitecustomize`` on ``PYTHONPATH`` installs a meta-path finder that refuses ``torch`` and everything
under it; every ``frpt_runtime`` module is imported, then ``frpt-embed --verify`` and ``frpt-verify``
run as real console scripts on a contract-obeying ONNX file with ONNX Runtime.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from runtime_toys import make_image_folder, make_toy_onnx, toy_bundle, toy_metadata

import frpt_runtime

BLOCKER = """
import sys

class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch' (blocked by test_no_torch)", name=name)
        return None

sys.meta_path.insert(0, _NoTorch())
"""

IMPORT_ALL = """
import importlib, pkgutil, sys
import frpt_runtime
names = [m.name for m in pkgutil.walk_packages(frpt_runtime.__path__, "frpt_runtime.")]
for name in names:
    importlib.import_module(name)
try:
    import torch
except ImportError:
    pass
else:
    raise SystemExit("torch was importable: the blocker failed")
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
print(len(names), "modules", " ".join(sorted(names)))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    block = tmp_path / "block"
    block.mkdir(exist_ok=True)
    (block / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(block), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _script(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def test_every_runtime_module_imports_without_torch(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL], env=_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    root = Path(frpt_runtime.__file__).parent
    expected = {
        ".".join(("frpt_runtime", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        for p in root.rglob("*.py")
    } - {"frpt_runtime"}
    listed = set(done.stdout.split()[2:])
    assert expected == listed and {"frpt_runtime.backends.tensorrt_backend", "frpt_runtime.families.frpt"} <= listed


def test_embed_and_verify_end_to_end_without_torch(tmp_path: Path) -> None:
    env = _env(tmp_path)
    model = tmp_path / "toy.onnx"
    weights = make_toy_onnx(model)
    toy_bundle(model.with_name("toy.ref.npz"), weights, model)
    folder = make_image_folder(tmp_path / "images", good=4)
    out = tmp_path / "out"
    embed = subprocess.run(
        [
            _script("frpt-embed"),
            str(folder),
            "--onnx",
            str(model),
            "--out",
            str(out),
            "--batch-size",
            "3",
            "--verify",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert embed.returncode == 0, embed.stderr
    document = json.loads(embed.stdout)
    assert document["command"] == "frpt-embed"
    result = document["result"]
    assert result["parity"]["passed"] and result["embed"]["count"] == 4 and len(result["embed"]["skipped"]) == 3
    assert np.load(out / "embeddings.npy").shape == (4, 8)
    verify = subprocess.run([_script("frpt-verify"), str(model)], env=env, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and "PASSED" in verify.stdout, verify.stderr

    plugin = tmp_path / "plugin.onnx"  # the custom node runs through the runtime's numpy op: no torch needed
    weights = make_toy_onnx(plugin, metadata=toy_metadata(lowering="plugin"), plugin_node=True)
    toy_bundle(plugin.with_name("plugin.ref.npz"), weights, plugin)
    verified = subprocess.run(
        [_script("frpt-verify"), str(plugin)], env=env, capture_output=True, text=True, timeout=120
    )
    assert verified.returncode == 0 and "PASSED" in verified.stdout, verified.stderr


SEARCH = """
import sys
from frpt_runtime.search.cli import index_app, search_app
app = index_app if sys.argv[1] == "index" else search_app
sys.argv = [sys.argv[1]] + sys.argv[2:]
app()
"""


def test_index_and_search_end_to_end_without_torch(tmp_path: Path) -> None:
    import pytest

    pytest.importorskip("faiss", reason="FAISS is not installed (pip install 'frpt-toolkit[search]')")
    env = _env(tmp_path)
    model = tmp_path / "toy.onnx"
    make_toy_onnx(model)
    folder = make_image_folder(tmp_path / "images", good=4)
    out = tmp_path / "out"
    embed = subprocess.run(
        [_script("frpt-embed"), str(folder), "--onnx", str(model), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert embed.returncode == 0, embed.stderr
    index = tmp_path / "g.index"

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-c", SEARCH, *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    built = run("index", "build", str(out), "-o", str(index), "--kind", "hnsw")
    assert built.returncode == 0 and "recall@3 vs exact search" in built.stdout, built.stderr
    image = folder / "class1" / "img1.png"
    found = run(
        "search",
        str(image),
        "--index",
        str(index),
        "--onnx",
        str(model),
        "-k",
        "2",
        "--json",
        "--sheet",
        str(tmp_path / "s.png"),
    )
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["result"]["queries"][0]["hits"]
    assert hits[0]["path"] == image.resolve().as_posix() and hits[0]["score"] >= 0.9999
    assert (tmp_path / "s.png").stat().st_size > 0
