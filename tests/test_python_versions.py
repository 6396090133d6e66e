"""The runtime installs and runs under every supported Python that this box has (skipped, with the reason, where an
interpreter is missing): the wheel plus ``[onnxruntime]`` in a throwaway venv, then ``frpt-embed --verify`` and
``frpt-verify`` on a contract-obeying ONNX file, whose embeddings must equal this interpreter's.

* Python 3.10 (JetPack 6's) twice: at the lowest versions ``pyproject.toml`` allows (its ``>=`` bounds, onnxruntime
  1.23.2, the newest with 3.10 wheels), and at ``constraints.txt``'s 3.10 pins;
* Python 3.12 and 3.13 at ``constraints.txt``'s pins (CI's own 3.11 runs the whole suite).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from packaging_kit import REPO, clean_env, declared_floors, find_python, make_venv, pip
from runtime_toys import make_image_folder, make_toy_onnx, toy_bundle

from frpt_runtime import __version__
from frpt_runtime.embed_job import EmbedJob, run_embed_job

pytestmark = pytest.mark.slow

CASES = [("3.10", "floors"), ("3.10", "pins"), ("3.12", "pins"), ("3.13", "pins")]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built the way users get it: sdist first, then the wheel from the sdist (no build/ in the tree)."""
    pytest.importorskip("build", reason="the release extra pins build")
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)]
    done = subprocess.run(command, capture_output=True, text=True, env=clean_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | np.ndarray]:
    """A toy export, its bundle, an image folder and this interpreter's embeddings of it."""
    root = tmp_path_factory.mktemp("toy")
    model = root / "toy.onnx"
    toy_bundle(root / "toy.ref.npz", make_toy_onnx(model), model)
    images = make_image_folder(root / "images", good=5)
    report = run_embed_job(EmbedJob(images, onnx=model, out=root / "here", batch_size=2, workers=1))
    return {"model": model, "images": images, "expected": np.load(report.embed.embeddings_path)}


@pytest.mark.parametrize(("version", "versions"), CASES, ids=[f"{v}-{k}" for v, k in CASES])
def test_runtime_installs_and_embeds(version: str, versions: str, wheel: Path, toy_model, tmp_path: Path) -> None:
    python = find_python(version)
    if python is None:
        pytest.skip(f"no Python {version} on this box (PATH or ~/.pyenv/versions)")
    bin_dir = make_venv(python, tmp_path / "venv")
    if versions == "floors":
        pip(bin_dir, f"{wheel}[onnxruntime]", *declared_floors("onnxruntime"))
    else:
        pip(bin_dir, "-c", str(REPO / "constraints.txt"), f"{wheel}[onnxruntime]")
    env, out = clean_env(), tmp_path / "out"
    shown = subprocess.run([str(bin_dir / "frpt-embed"), "--version"], capture_output=True, text=True, env=env)
    assert shown.stdout.strip() == f"frpt-toolkit {__version__}", shown.stderr
    embed = [str(bin_dir / "frpt-embed"), str(toy_model["images"]), "--onnx", str(toy_model["model"]), "-o", str(out)]
    done = subprocess.run([*embed, "-b", "2", "--verify", "--json"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)["result"]
    assert result["parity"]["passed"] and result["embed"]["count"] == 5
    embeddings = np.load(out / "embeddings.npy")
    if versions == "floors":  # another onnxruntime: same numbers up to float32 rounding
        np.testing.assert_allclose(embeddings, toy_model["expected"], rtol=0, atol=1e-6)
    else:
        np.testing.assert_array_equal(embeddings, toy_model["expected"])
    verify = subprocess.run([str(bin_dir / "frpt-verify"), str(toy_model["model"])], capture_output=True, text=True)
    assert verify.returncode == 0 and "PASSED" in verify.stdout, verify.stderr
