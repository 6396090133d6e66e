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

import frpt_runtime
import numpy as np
from runtime_toys import make_image_folder, make_toy_onnx, toy_bundle, toy_metadata

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
import frpt_runtime, frpt_runtime.backends
packages = (frpt_runtime, frpt_runtime.backends)
names = [m.name for pkg in packages for m in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + ".")]
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
    expected = {p.stem for p in Path(frpt_runtime.__file__).parent.glob("*.py")} - {"__init__"}
    listed = {name.rsplit(".", 1)[1] for name in done.stdout.split()[2:]}
    assert expected <= listed and {"onnxruntime_backend", "tensorrt_backend", "base"} <= listed


def test_embed_and_verify_end_to_end_without_torch(tmp_path: Path) -> None:
    env = _env(tmp_path)
    model = tmp_path / "toy.onnx"
    weights = make_toy_onnx(model)
    toy_bundle(model.with_name("toy.ref.npz"), weights)
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
            "--batch",
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
    result = json.loads(embed.stdout)
    assert result["parity"]["passed"] and result["embed"]["count"] == 4 and len(result["embed"]["skipped"]) == 3
    assert np.load(out / "embeddings.npy").shape == (4, 8)
    verify = subprocess.run([_script("frpt-verify"), str(model)], env=env, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and "PASSED" in verify.stdout, verify.stderr

    plugin = tmp_path / "plugin.onnx"
    make_toy_onnx(plugin, metadata=toy_metadata(lowering="plugin"), plugin_node=True)
    refused = subprocess.run(
        [_script("frpt-verify"), str(plugin)], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "plugin lowering" in refused.stderr and "torch" in refused.stderr and "standard lowering" in refused.stderr


SEARCH = """
import sys
from frpt_runtime.search_cli import index_app, search_app
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
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert embed.returncode == 0, embed.stderr
    index = tmp_path / "g.index"

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-c", SEARCH, *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    built = run("index", "build", str(out), "-o", str(index), "--kind", "hnsw")
    assert built.returncode == 0 and "recall@3 vs exact search" in built.stdout, built.stderr
    image = folder / "class1" / "img1.png"
    found = run("search", str(image), "--index", str(index), "--onnx", str(model), "-k", "2", "--json",
                "--sheet", str(tmp_path / "s.png"))
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["queries"][0]["hits"]
    assert hits[0]["path"] == image.resolve().as_posix() and hits[0]["score"] >= 0.9999
    assert (tmp_path / "s.png").stat().st_size > 0
