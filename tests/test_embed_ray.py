"""frpt-embed --ray on local Ray clusters: the bytes of frpt-embed, resume by shard, faults, no deadlock.

Two clusters, both on this machine: ``ray.init(num_cpus=2)`` (the CI box's size, with the default resource plan), and
a multi-node simulation with ``ray.cluster_utils.Cluster`` (a head without CPUs and two one-CPU worker nodes). Every
run embeds the toy export over the toy folder (12 images + 3 bad files, plus what the scan names or skips: a symlink
inside the folder, a non-UTF-8 name, a symlink leaving the folder, a symlinked folder) at batch 2 in shards of 4
files, and its ``embeddings.npy`` + ``manifest.json`` are compared byte for byte with ``frpt-embed``'s, then read
back through the one checked reader, ``read_embeddings``. Faults are injected into the
Ray workers from the tests (:mod:`ray_faults`) and into the driver by :mod:`crash_harness`. Each test runs under a
deadline that fails it loudly (a hung Ray job would otherwise hang CI).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from crash_harness import FINAL_FILES
from PIL import Image
from ray_faults import runtime_env
from runtime_toys import make_image_folder, make_toy_onnx
from typer.testing import CliRunner

from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from frpt_runtime.embed import embed_folder
from frpt_runtime.embed_job import EmbedJob, run_embed_job
from frpt_runtime.embedding_set import read_embedding_set
from frpt_runtime.errors import FrptError
from frpt_runtime.manifest import read_embeddings
from frpt_runtime.out_lock import OutputLock
from frpt_runtime.search.cli import index_app

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'frpt-toolkit[ray]')")
pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed (pip install 'frpt-toolkit[ray]')")
pytestmark = pytest.mark.slow

HARNESS = Path(__file__).with_name("crash_harness.py")
OUTPUTS = ("embeddings.npy", "manifest.json")
BATCH, SHARD_FILES = 2, 4  # 17 files -> 9 chunks -> 5 shards (class1/img7.png is in shard 2)
EMBEDDED = 14


@contextmanager
def deadline(seconds: int, what: str) -> Iterator[None]:
    """Fail with TimeoutError if the block runs longer than ``seconds`` (a deadlocked Ray job)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"{what} still running after {seconds} s: deadlocked?")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The toy model and folder, and frpt-embed's outputs on them (the reference bytes)."""
    base = tmp_path_factory.mktemp("ray_toy")
    model = base / "toy.onnx"
    make_toy_onnx(model)
    other = base / "other.onnx"
    make_toy_onnx(other, seed=1)
    folder = make_image_folder(base / "images", good=12)
    Image.new("RGB", (24, 24), (9, 9, 9)).save(base / "outside.png")
    (folder / "outside.png").symlink_to(base / "outside.png")  # skipped by the scan: leaves the root
    (folder / "linked").symlink_to(folder / "class0", target_is_directory=True)  # skipped: folder not followed
    (folder / "class1" / "alias.png").symlink_to(folder / "class1" / "img1.png")  # embedded under its own name
    Image.new("RGB", (26, 22), (7, 8, 9)).save(os.fsdecode(os.fsencode(folder / "class2") + b"/\xffodd.png"), "PNG")
    with OnnxRuntimeBackend(model) as backend:
        embed_folder(folder, backend, base / "reference", batch=BATCH, workers=2)
    expected = {name: (base / "reference" / name).read_bytes() for name in OUTPUTS}
    return {"model": model, "other": other, "folder": folder, "expected": expected, "base": base}


def _job(toy: dict, out: Path, address: str, **changes: object) -> EmbedJob:
    fields: dict = dict(images_dir=toy["folder"], onnx=toy["model"], out=out, batch_size=BATCH, workers=2)
    fields.update(ray=address, shard_size=SHARD_FILES, **changes)
    return EmbedJob(**fields)


def _same_bytes(toy: dict, out: Path) -> None:
    """``out`` holds exactly frpt-embed's final outputs, byte-identical, and the one checked reader accepts them."""
    for name in OUTPUTS:
        assert (out / name).read_bytes() == toy["expected"][name], name
    assert sorted(p.name for p in out.iterdir()) == FINAL_FILES  # the shards are gone; the lock file stays
    rows, manifest = read_embeddings(out)
    assert rows.shape[0] == manifest["count"] == EMBEDDED


def test_two_cpus_default_plan_matches_frpt_embed_resumes_by_shard_and_refuses_other_runs(
    toy: dict, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    ray.init(address="local", num_cpus=2, include_dashboard=False)  # a fresh instance even beside a running cluster
    try:
        with deadline(300, "frpt-embed --ray on ray.init(num_cpus=2)"):
            unmerged = run_embed_job(_job(toy, out, "local", merge=False)).embed
            assert unmerged is not None and not unmerged.merged and unmerged.shards == 5
            assert unmerged.count == EMBEDDED
            reference = json.loads(toy["expected"]["manifest.json"])
            assert unmerged.skipped == [(item["path"], item["reason"]) for item in reference["skipped"]]
            manifest = json.loads((out / "manifest.json").read_text())
            assert manifest["format"] == "frpt-embeddings-shards/1" and len(manifest["shards"]) == 5
            assert manifest["skipped_count"] == len(reference["skipped"]) == 5
            assert sorted(p.name for p in out.iterdir()) == [".frpt-embed.lock", "manifest.json", "run.json", "shards"]
            gallery = read_embedding_set(out)  # what frpt-index reads: the shards, checked
            assert gallery.images == reference["images"]
            assert gallery.embeddings.tobytes() == np.load(toy["base"] / "reference" / "embeddings.npy").tobytes()
            if importlib.util.find_spec("faiss") is not None:  # and frpt-index builds from it
                built = CliRunner().invoke(index_app, ["build", str(out), "-o", str(tmp_path / "g.index")])
                assert built.exit_code == 0 and f"indexed {EMBEDDED} images" in built.stdout, built.output

            with pytest.raises(FrptError, match=r"differs in: .*model_sha256"):
                run_embed_job(_job(toy, out, "local", onnx=toy["other"], resume=True))
            with OutputLock(out), pytest.raises(FrptError, match="in use by another frpt-embed run"):
                run_embed_job(_job(toy, out, "local", resume=True))  # frpt-embed's lock on OUT, held by another
            finished = toy["folder"] / "class0" / "img0.jpg"
            stat = finished.stat()
            os.utime(finished, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
            try:
                with pytest.raises(FrptError, match=r"--resume: class0/img0.jpg changed since the interrupted run"):
                    run_embed_job(_job(toy, out, "local", resume=True))
            finally:
                os.utime(finished, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            extra = toy["folder"] / "class0" / "late.png"
            Image.new("RGB", (30, 30), (1, 2, 3)).save(extra)
            try:
                with pytest.raises(FrptError, match=r"differs in: file_count, files_sha256"):
                    run_embed_job(_job(toy, out, "local", resume=True))
            finally:
                extra.unlink()

            (out / "shards" / "shard-000001.parquet").write_bytes(b"PAR1 torn")  # a shard that no longer verifies
            merged = run_embed_job(_job(toy, out, "local", resume=True)).embed
    finally:
        ray.shutdown()
    assert merged is not None and merged.merged and merged.shards_resumed == 4 and merged.resumed_images == 13
    _same_bytes(toy, out)
    assert json.loads((out / "run.json").read_text())["ray"]["actors"] == 1


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """A head node without CPUs (the driver's) and two worker nodes of one CPU each, all on this machine."""
    from ray.cluster_utils import Cluster

    with deadline(240, "starting the ray.cluster_utils.Cluster"):
        nodes = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0, "include_dashboard": False})
        nodes.add_node(num_cpus=1)
        nodes.add_node(num_cpus=1)
        nodes.wait_for_nodes()
    yield nodes
    nodes.shutdown()


def test_cluster_actor_and_decode_worker_killed_mid_run_give_the_same_bytes(
    toy: dict, cluster: object, tmp_path: Path
) -> None:
    out, actor_mark, decode_mark = tmp_path / "out", tmp_path / "actor.killed", tmp_path / "decode.killed"
    faults = f"kill-embed:2:{actor_mark};kill-decode:img5.png:{decode_mark}"
    ray.init(address=cluster.address, runtime_env=runtime_env(faults))
    try:
        with deadline(300, "frpt-embed --ray on the 3-node cluster with faults"):
            report = run_embed_job(_job(toy, out, cluster.address)).embed
    finally:
        ray.shutdown()
    assert actor_mark.exists() and decode_mark.exists()  # an actor and a decode worker were SIGKILLed mid-run
    assert report is not None and report.nodes == 3 and report.actors == 2 and report.count == EMBEDDED
    _same_bytes(toy, out)


def _cli(toy: dict, out: Path, address: str, *extra: str, crash: str | None = None) -> subprocess.CompletedProcess:
    """frpt-embed --ray in its own process (the driver); ``crash``: a crash_harness spec that SIGKILLs it."""
    if crash is None:
        launcher = ["-c", "from frpt_runtime.cli import embed_app; embed_app()"]
    else:
        launcher = [str(HARNESS), crash, "frpt_runtime.cli:embed_app"]
    command = [
        sys.executable, *launcher, str(toy["folder"]), "--onnx", str(toy["model"]), "-o", str(out),
        "-b", str(BATCH), "--workers", "2", "--shard-size", str(SHARD_FILES), "--ray", address, *extra,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_cluster_driver_killed_after_first_shard_resumes_to_the_same_bytes(
    toy: dict, cluster: object, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    killed = _cli(toy, out, cluster.address, crash="replace:shard-*.parquet:1")
    assert killed.returncode == -9, killed.stderr  # SIGKILL right after the first shard file was renamed in place
    assert not (out / "manifest.json").exists()
    (first,) = (out / "shards").glob("shard-*.parquet")  # shards finish in any order: whichever came first
    kept = pq.read_metadata(first).num_rows
    done = _cli(toy, out, cluster.address, "--resume", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["result"]["embed"]
    assert report["shards_resumed"] == 1 and report["resumed_images"] == kept and report["count"] == EMBEDDED
    _same_bytes(toy, out)


@pytest.mark.parametrize("crash", ["replace:embeddings.npy:1", "replace:manifest.json:1"])
def test_cluster_driver_killed_in_the_merge_resumes_to_the_same_bytes(
    toy: dict, cluster: object, tmp_path: Path, crash: str
) -> None:
    """Killed inside frpt-embed's commit (embeddings.npy in place, no manifest yet) or after it (the shards not yet
    removed): ``--resume`` keeps every shard, commits again, and leaves exactly frpt-embed's outputs."""
    out = tmp_path / "out"
    killed = _cli(toy, out, cluster.address, crash=crash)
    assert killed.returncode == -9, killed.stderr
    assert (out / "shards" / "state.json").is_file() and len(list((out / "shards").glob("shard-*.parquet"))) == 5
    done = _cli(toy, out, cluster.address, "--resume", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["result"]["embed"]
    assert report["shards_resumed"] == 5 and report["images_per_s"] is None
    _same_bytes(toy, out)


def test_cluster_shard_failing_every_time_exits_nonzero_keeping_the_others(
    toy: dict, cluster: object, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    ray.init(address=cluster.address, runtime_env=runtime_env("fail-decode:img7.png"))
    try:
        with deadline(300, "frpt-embed --ray with a chunk that always fails"), pytest.raises(FrptError) as failed:
            run_embed_job(_job(toy, out, cluster.address))
    finally:
        ray.shutdown()
    message = str(failed.value)
    assert "1 of 5 shards failed 3 times" in message and "RuntimeError: injected fault decoding img7.png" in message
    assert "the 4 finished shards are kept" in message and "--resume" in message
    assert len(list((out / "shards").glob("shard-*.parquet"))) == 4 and not (out / "manifest.json").exists()
    done = _cli(toy, out, cluster.address, "--resume", "--json")  # the cause gone: the resume completes
    assert done.returncode == 0 and json.loads(done.stdout)["result"]["embed"]["shards_resumed"] == 4, done.stderr
    _same_bytes(toy, out)
