"""A parity proof cannot be loosened by the thing it checks (issue 9, item 7): the bundle names the model it was
made for and the precision that was exported; a model whose identity or precision disagrees is refused, and the
thresholds are the bundle's precision's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from runtime_toys import make_image_folder, make_toy_onnx, toy_bundle, toy_metadata
from typer.testing import CliRunner

from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from frpt_runtime.bundle import load_bundle
from frpt_runtime.cli import embed_app, verify_app
from frpt_runtime.digests import sha256_file
from frpt_runtime.errors import FrptError
from frpt_runtime.verify import verify_backend


def _perturbed(source: Path, target: Path, scale: float, precision: str) -> Path:
    """``source`` with its weights nudged by ``scale`` (relative) and its frpt.precision metadata set."""
    model = onnx.load(source)
    (weights,) = [t for t in model.graph.initializer if t.name == "W"]
    array = numpy_helper.to_array(weights)
    noise = np.random.default_rng(3).standard_normal(array.shape).astype(np.float32)
    weights.CopyFrom(numpy_helper.from_array(array + scale * np.abs(array).mean() * noise, "W"))
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, toy_metadata(precision=precision))
    onnx.save(model, target)
    return target


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    model = tmp_path / "model.onnx"
    weights = make_toy_onnx(model)
    return model, toy_bundle(tmp_path / "model.ref.npz", weights, model), weights


def test_an_edited_precision_cannot_loosen_the_thresholds(exported, tmp_path: Path) -> None:
    model, bundle, _ = exported
    broken = _perturbed(model, tmp_path / "broken.onnx", 3e-3, "fp32")
    runner = CliRunner()
    failed = runner.invoke(verify_app, [str(broken), "--bundle", str(bundle)])
    assert failed.exit_code == 2 and "was made for the model with sha256" in failed.stderr  # another model
    relabelled = _perturbed(model, tmp_path / "relabelled.onnx", 3e-3, "fp16")  # the trick
    with OnnxRuntimeBackend(relabelled) as backend:
        refused = runner.invoke(verify_app, [str(relabelled), "--bundle", str(bundle)])
        assert refused.exit_code == 2 and refused.stderr.count("\n") == 1, refused.output
        assert f"but relabelled.onnx is {backend.info.sha256[:16]}" in refused.stderr
        own = load_bundle(bundle)  # the bundle's figures, relabelled as made for this file (precision kept fp32)
        forged = type(own)(own.images, own.embeddings, own.batch_sizes, own.config, backend.info.sha256, own.precision)
        with pytest.raises(FrptError, match="claims precision fp16 but its bundle was made for the fp32 export"):
            verify_backend(backend, forged)


def test_thresholds_come_from_the_bundle(exported, tmp_path: Path) -> None:
    """The same model output judged at the bundle's precision: fp32 fails on max |Δ|, fp16 passes on cosine."""
    model, _, weights = exported
    noisy_fp32 = toy_bundle(tmp_path / "a.ref.npz", weights, model, noise=2e-3)
    result = CliRunner().invoke(verify_app, [str(model), "--bundle", str(noisy_fp32)])
    assert result.exit_code == 1 and "FAILED: sample 4: max |Δ|" in result.stdout
    fp16_model = _perturbed(model, tmp_path / "half.onnx", 0.0, "fp16")
    noisy_fp16 = toy_bundle(tmp_path / "b.ref.npz", weights, fp16_model, noise=2e-3, precision="fp16")
    result = CliRunner().invoke(verify_app, [str(fp16_model), "--bundle", str(noisy_fp16), "--json"])
    assert result.exit_code == 0 and '"precision": "fp16"' in result.stdout, result.output


def test_embed_verify_refuses_a_model_its_bundle_was_not_made_for(exported, tmp_path: Path) -> None:
    model, bundle, _ = exported
    other = _perturbed(model, tmp_path / "other.onnx", 1e-6, "fp32")  # a hair off: not the exported bytes
    folder = make_image_folder(tmp_path / "images", good=2)
    result = CliRunner().invoke(
        embed_app, [str(folder), "--onnx", str(other), "--verify", "--bundle", str(bundle), "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "was made for the model with sha256" in result.stderr
    assert not (tmp_path / "o").exists()
    assert sha256_file(other) != sha256_file(model)
