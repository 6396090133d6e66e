"""The parts of frpt-embed --ray that need no cluster: shard layout, resource plan, shard files, option checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from runtime_toys import make_image_folder
from typer.testing import CliRunner

from frpt_runtime.cli import embed_app
from frpt_runtime.distributed.layout import ShardLayout
from frpt_runtime.distributed.resources import NodeResources, ResourcePlan, plan_resources
from frpt_runtime.errors import FrptError
from frpt_runtime.image_files import ImageFile
from frpt_runtime.journal import ChunkRecord

ODD_NAME = "b/\udcff.png"  # a non-UTF-8 name (byte 0xff) in PEP 383 form, as the scan gives it
NAMES = ["a/0.png", "a/1.png", "b/2.png", ODD_NAME]
STATS = [(10, 1_000), (11, 2_000), (12, 3_000), (13, 4_000)]


def test_shards_are_whole_chunks_cut_from_the_list_alone() -> None:
    layout = ShardLayout(total=15, batch=2, shard_files=4)
    assert (layout.chunks_per_shard, layout.files_per_shard, layout.count) == (2, 4, 4)
    assert [layout.files(s) for s in range(4)] == [range(0, 4), range(4, 8), range(8, 12), range(12, 15)]
    assert layout.chunks(3) == range(6, 8) and layout.chunk_files(7) == range(14, 15) and layout.shard_of(5) == 2
    odd = ShardLayout(total=15, batch=3, shard_files=4)  # 4 files round up to two chunks of 3
    assert (odd.files_per_shard, odd.count, odd.chunks(2), odd.chunk_files(4)) == (6, 3, range(4, 5), range(12, 15))
    assert ShardLayout(15, 2, 4) == layout and layout.file_name(7) == "shard-000007.parquet"
    with pytest.raises(FrptError, match="--shard-size must be >= 1"):
        ShardLayout(15, 2, 0)


CLUSTERS = {
    "ci-box": ([(2, 0)], False),
    "one-cpu": ([(1, 0)], False),
    "head+2x1cpu": ([(0, 0), (1, 0), (1, 0)], False),
    "4x16cpu": ([(16, 0)] * 4, False),
    "2x(64cpu,8gpu)": ([(64, 8)] * 2, True),
    "head+4x(8cpu,1gpu)": ([(4, 0)] + [(8, 1)] * 4, True),
    "2cpu,4gpu": ([(2, 4)], True),
}


@pytest.mark.parametrize("name", CLUSTERS)
def test_resource_plan_never_starves_decoding(name: str) -> None:
    shape, gpu = CLUSTERS[name]
    nodes = [NodeResources(cpus, gpus) for cpus, gpus in shape]
    plan = plan_resources(nodes, gpu_backend=gpu)
    for node in nodes:
        if node.cpus == 0:
            continue
        most = int(node.gpus) if gpu else plan.actors  # a CPU backend's actors might all land on this node
        assert most * plan.actor_cpus + plan.decode_cpus <= node.cpus, (name, plan, node)
    assert 0 < plan.actor_cpus < plan.decode_cpus <= 1  # unequal: Ray Data keeps the decode tasks apart
    assert plan.actors == (sum(int(g) for _, g in shape) if gpu else sum(1 for c, _ in shape if c > 0))
    assert plan.actor_gpus == (1.0 if gpu else 0.0)


def test_resource_plan_of_the_ci_box_and_clusters_it_cannot_use() -> None:
    assert plan_resources([NodeResources(2)], gpu_backend=False) == ResourcePlan(1, 0.5, 0.0, 1.0)
    with pytest.raises(FrptError, match="no node with CPUs"):
        plan_resources([NodeResources(0, 2)], gpu_backend=True)
    with pytest.raises(FrptError, match="no node of the Ray cluster has one"):
        plan_resources([NodeResources(8)], gpu_backend=True)


def _chunks(rows: np.ndarray) -> list:
    from frpt_runtime.distributed.shard_files import ShardChunk

    return [
        ShardChunk(ChunkRecord(6, ["a/1.png"], [("a/0.png", "zero-byte file")], STATS[:2]), rows[:1]),
        ShardChunk(ChunkRecord(7, ["b/2.png", ODD_NAME], [], STATS[2:]), rows[1:]),
    ]


def test_shard_file_round_trip_and_every_mismatch_is_unusable(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install 'frpt-toolkit[ray]')")
    from frpt_runtime.distributed.shard_files import ShardUnusable, read_shard, write_shard

    files = [ImageFile(tmp_path / name, name, *stat) for name, stat in zip(NAMES, STATS, strict=True)]
    rows = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    meta = {"format": "frpt-embed-shard/1", "shard": 3, "first": 12, "files": 4, "dim": 5, "state_sha256": "ab"}
    path = tmp_path / "shard-000003.parquet"
    write_shard(path, meta, files, _chunks(rows), 5)
    back = read_shard(path, meta, NAMES, batch=2)
    assert [c.record for c in back] == [c.record for c in _chunks(rows)]  # names (non-UTF-8 too) and stats kept
    assert np.concatenate([c.rows for c in back]).tobytes() == rows.tobytes()  # float32 bits survive
    for other_meta, other_files, why in [
        ({**meta, "state_sha256": "cd"}, NAMES, "another run or shard"),
        ({**meta, "shard": 4}, NAMES, "another run or shard"),
        (meta, [*NAMES[:3], "b/4.png"], "other files"),
        ({**meta, "dim": 4}, NAMES, "not float32 rows of D=4"),
    ]:
        with pytest.raises(ShardUnusable, match=why):
            read_shard(path, other_meta, other_files, batch=2)
    data = path.read_bytes()
    for name, damaged in [("torn", data[: len(data) // 2]), ("flipped", _flip_in_data_page(data, rows))]:
        (tmp_path / name).write_bytes(damaged)
        with pytest.raises(ShardUnusable, match="missing or unreadable"):
            read_shard(tmp_path / name, meta, NAMES, batch=2)
    with pytest.raises(ValueError, match="do not cover its files"):
        write_shard(path, meta, files[::-1], _chunks(rows), 5)


def _flip_in_data_page(data: bytes, rows: np.ndarray) -> bytes:
    """``data`` with one bit of an embedding value flipped (the page checksum must catch it)."""
    at = data.find(rows[1].tobytes())
    assert at > 0
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_ray_options_are_checked_before_any_cluster(tmp_path: Path) -> None:
    folder = make_image_folder(tmp_path / "images", good=1)
    model = tmp_path / "m.onnx"
    runner = CliRunner()
    for extra, message in [
        (["--no-merge"], "--no-merge and --shard-size apply to --ray runs only"),
        (["--shard-size", "8"], "--no-merge and --shard-size apply to --ray runs only"),
        (["--ray", "auto", "--device", "cuda:1"], "Ray gives each actor its own GPU"),
        (["--ray", "auto", "--plugin-lib", str(tmp_path / "l.so")], "TensorRT engines only"),
    ]:
        res = runner.invoke(embed_app, [str(folder), "--onnx", str(model), "-o", str(tmp_path / "o"), *extra])
        assert res.exit_code == 2 and res.stderr.count("\n") == 1 and message in res.stderr, (extra, res.stderr)


def test_ray_missing_names_its_extra(tmp_path: Path) -> None:
    """On an install without the [ray] extra, --ray is one line naming it (the rest of frpt-embed is unaffected)."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoRay:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('ray', 'pyarrow'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _NoRay())\n"
    )
    folder = make_image_folder(tmp_path / "images", good=1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    command = [str(Path(sys.executable).with_name("frpt-embed")), str(folder), "--onnx", str(tmp_path / "m.onnx")]
    done = subprocess.run([*command, "--ray", "local"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == (
        "error: this command needs the Python package 'ray': pip install 'frpt-toolkit[ray]'"
    ), done.stderr


@pytest.mark.parametrize("decoder", ["fast", "exact"])
def test_decode_stage_decodes_as_the_model_config_says(tmp_path: Path, decoder: str) -> None:
    """The Ray decode task feeds the model as frpt-embed's pipeline does, decoder included: a large JPEG decodes
    differently under ``fast`` (draft) and ``exact``, and the task's pixels equal the pipeline's for that config."""
    import json

    from PIL import Image

    from frpt_runtime.distributed.stages import decode_chunk
    from frpt_runtime.families.frpt import FRPTConfig
    from frpt_runtime.pipeline import BatchPipeline

    rng = np.random.default_rng(0)
    path = tmp_path / "big.jpg"
    Image.fromarray(rng.integers(0, 256, (900, 700, 3), dtype=np.uint8)).save(path, quality=90)
    paths = [path, path]
    configs = {name: FRPTConfig(input_size=64, decoder=name) for name in ("fast", "exact")}
    row = {"shard": 0, "chunk": 0, "paths": json.dumps([str(p) for p in paths])}
    out = decode_chunk(row, config=configs[decoder], workers=1)
    assert out["error"] == "" and out["rows"] == 2
    pixels = np.frombuffer(out["pixels"], np.uint8).reshape(2, 64, 64, 3)
    expected = {}
    for name, config in configs.items():
        with BatchPipeline.for_config(paths, config, batch=2, workers=1) as pipeline:
            (decoded,) = list(pipeline)
        expected[name] = decoded.images
    assert not np.array_equal(expected["fast"], expected["exact"])  # the case tells the decoders apart
    np.testing.assert_array_equal(pixels, expected[decoder])


def test_stages_probe_decode_and_embed_in_process_as_frpt_embed_does(tmp_path: Path) -> None:
    """The Ray stages run here without a cluster: the probe sees the model (and names what stops it), the decode
    task skips what frpt-embed skips, the embedding actor gives the toy model's rows and refuses another model."""
    import json

    from runtime_toys import make_toy_onnx, toy_bundle, toy_reference

    from frpt_runtime.distributed.stages import BackendSpec, EmbedChunks, decode_chunk, model_facts, probe_model

    model = tmp_path / "toy.onnx"
    weights = make_toy_onnx(model)
    folder = make_image_folder(tmp_path / "images")
    spec = BackendSpec(onnx=model)
    probe = probe_model(spec, batch=4, verify=True, bundle=toy_bundle(tmp_path / "toy.ref.npz", weights, model))
    assert probe.problem is None and probe.info is not None and probe.parity is not None and probe.parity.passed
    missing = probe_model(BackendSpec(onnx=tmp_path / "none.onnx"), batch=4, verify=False, bundle=None)
    assert missing.info is None and "none.onnx" in (missing.problem or "")
    assert not spec.uses_gpu and BackendSpec(onnx=model, device="cuda").uses_gpu and BackendSpec(engine=model).uses_gpu

    paths = [folder / "class0" / "img0.jpg", folder / "broken.jpg", folder / "class1" / "img1.png"]
    config = probe.info.config
    row = {"shard": 0, "chunk": 3, "paths": json.dumps([str(p) for p in paths])}
    decoded = decode_chunk(row, config=config, workers=1)
    assert (decoded["rows"], decoded["error"]) == (2, "")
    assert [position for position, _ in json.loads(decoded["skipped"])] == [1]  # broken.jpg, with its reason

    actor = EmbedChunks(spec, 4, model_facts(probe.info))
    out = actor(decoded)
    assert (out["shard"], out["chunk"], out["rows"], out["error"]) == (0, 3, 2, "")
    pixels = np.frombuffer(decoded["pixels"], np.uint8).reshape(2, *probe.info.input_shape)
    np.testing.assert_allclose(np.frombuffer(out["embedding"], "<f4").reshape(2, -1), toy_reference(pixels, weights),
                               atol=1e-5)  # fmt: skip
    assert actor({**decoded, "error": "RuntimeError: decode died"})["error"] == "RuntimeError: decode died"
    assert "ValueError" in actor({**decoded, "rows": 3})["error"]  # pixels that are not 3 images: the chunk fails

    other = EmbedChunks(spec, 4, {**model_facts(probe.info), "sha256": "f" * 64})
    assert other(decoded)["error"] == "this actor's model differs from the probed one in: sha256"
    unusable = EmbedChunks(BackendSpec(onnx=tmp_path / "none.onnx"), 4, {})
    assert "none.onnx" in unusable(decoded)["error"]
    failed = decode_chunk({**row, "paths": json.dumps([str(tmp_path)])}, config=config, workers=0)
    assert failed["error"] and failed["rows"] == 0  # a pipeline that cannot start fails the chunk, named
