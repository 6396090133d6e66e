"""``frpt-embed --ray`` against single-box ``frpt-embed`` on this machine, Ray's start-up, and the serial steps.

One run, ratios and medians (the machine is shared: the A/B runs are interleaved, alternating which goes first):

* throughput: ``frpt-embed IMAGES --onnx M`` vs ``frpt-embed IMAGES --onnx M --ray local`` on the same folder,
  model (a pretrained FRPT Lite0 export, fp32, ONNX Runtime CPU) and batch, each as its own process: end-to-end
  images/s (process wall time) and in-run images/s (``run.json``, Ray's start-up excluded); the two outputs are
  compared byte for byte;
* Ray's start-up on its own: ``import ray``, ``ray.init`` of a local instance, a first task, ``ray.shutdown``;
* the steps a cluster cannot parallelise, which bound the scaling with N GPU nodes: listing the folder (per file),
  writing a shard on the driver (per 4096 rows) and the final merge (per 100k rows), with the run's embedding width.

Usage: ``python benchmarks/bench_ray.py [--images 320] [--size 224] [--batch 32] [--repeats 3]`` (needs torch to
export the model, like ``bench_embed.py``, and the ``[ray]`` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STARTUP = """
import time, json
t0 = time.perf_counter()
import ray
t1 = time.perf_counter()
ray.init(address="local", include_dashboard=False, logging_level="ERROR")
t2 = time.perf_counter()
ray.get(ray.remote(lambda: 1).remote())
t3 = time.perf_counter()
ray.shutdown()
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "init_s": t2 - t1, "first_task_s": t3 - t2, "shutdown_s": t4 - t3}))
"""


def prepare(work: Path, size: int, images: int) -> None:
    """A pretrained FRPT Lite0 exported to fp32 ONNX, and ``images`` photo-like JPEGs (``bench_embed``'s)."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_embed import make_images

    from frpt.model import create_model
    from frpt_export.onnx_export import export_onnx
    from frpt_runtime.families.frpt import FRPTConfig

    torch.manual_seed(0)
    export_onnx(create_model(FRPTConfig(input_size=size, num_classes=10)).eval(), work / "model.onnx")
    make_images(work / "images", images)


def embed_run(work: Path, out: str, batch: int, ray: bool) -> dict[str, float]:
    """One ``frpt-embed`` process; its wall time and ``run.json``."""
    command = [
        str(Path(sys.executable).with_name("frpt-embed")), str(work / "images"), "--onnx", str(work / "model.onnx"),
        "-o", str(work / out), "-b", str(batch), "--workers", str(min(4, os.cpu_count() or 1)),
    ]  # fmt: skip
    if ray:
        command += ["--ray", "local", "--shard-size", str(4 * batch)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    run = json.loads((work / out / "run.json").read_text())
    images = run["images_processed"]
    startup = run["ray"]["startup_s"] if ray else 0.0
    return {"wall": wall, "e2e": images / wall, "in_run": images / (run["wall_s"] - startup), "startup": startup}


def throughput(work: Path, batch: int, repeats: int) -> tuple[dict[str, list[dict[str, float]]], bool]:
    """Interleaved single-box / Ray runs; whether every Ray output equals the single-box one byte for byte."""
    results: dict[str, list[dict[str, float]]] = {"single": [], "ray": []}
    same = True
    for repeat in range(repeats):
        order = ["single", "ray"] if repeat % 2 == 0 else ["ray", "single"]
        for name in order:
            results[name].append(embed_run(work, f"{name}{repeat}", batch, ray=name == "ray"))
        for file in ("embeddings.npy", "manifest.json"):
            same &= (work / f"single{repeat}" / file).read_bytes() == (work / f"ray{repeat}" / file).read_bytes()
    return results, same


def startup(repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"Ray start-up failed:\n{done.stderr}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def serial_steps(work: Path, dim: int, repeats: int) -> dict[str, float]:
    """Medians of the driver's serial work (listing per file, one 4096-row shard write, merge of 100k rows) and of
    the decode rate of one core (what sets the CPUs a GPU needs)."""
    from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from frpt_runtime.distributed.shard_files import ShardChunk, read_shard, write_shard
    from frpt_runtime.embed_run import EmbedRun, commit
    from frpt_runtime.image_files import ImageFile, ImageScan, scan_images
    from frpt_runtime.images import load_image
    from frpt_runtime.journal import ChunkRecord

    listing = work / "listing"
    for i in range(10_000):
        (listing / f"{i % 100:03d}").mkdir(parents=True, exist_ok=True)
        (listing / f"{i % 100:03d}" / f"{i:06d}.jpg").touch()
    with OnnxRuntimeBackend(work / "model.onnx") as backend:
        info = backend.info
    rows = np.random.default_rng(0).standard_normal((4096, dim)).astype(np.float32)
    names = [f"{i // 100:04d}/{i:08d}.jpg" for i in range(4096)]
    files = [ImageFile(work / name, name, 1000, 0) for name in names]
    chunks = [
        ShardChunk(ChunkRecord(k, names[k * 32 : (k + 1) * 32], [], [(1000, 0)] * 32), rows[k * 32 : (k + 1) * 32])
        for k in range(128)
    ]
    meta = {"format": "frpt-embed-shard/1", "shard": 0, "first": 0, "files": 4096, "dim": dim, "state_sha256": "-"}
    timings: dict[str, list[float]] = {
        "list_per_file_us": [],
        "shard_write_s": [],
        "merge_100k_s": [],
        "decode_per_core_img_s": [],
    }
    photos = scan_images(work / "images").paths
    merge_run = EmbedRun(ImageScan(work), info, work / "merged", 32, 1, False)
    for _ in range(repeats):
        start = time.perf_counter()
        for path in photos:
            load_image(path, info.config.input_size, info.config.crop_pct, info.config.decoder)
        timings["decode_per_core_img_s"].append(len(photos) / (time.perf_counter() - start))
        start = time.perf_counter()
        scan_images(listing)
        timings["list_per_file_us"].append((time.perf_counter() - start) / 10_000 * 1e6)
        start = time.perf_counter()
        write_shard(work / "shard.parquet", meta, files, chunks, dim)
        timings["shard_write_s"].append(time.perf_counter() - start)
        start = time.perf_counter()  # merge: read 25 shards back (~100k rows), then frpt-embed's commit
        merged = [chunk for _ in range(25) for chunk in read_shard(work / "shard.parquet", meta, names, 32)]
        embeddings = np.concatenate([chunk.rows for chunk in merged])
        commit(merge_run, [c.record for c in merged], embeddings, start, 0)
        timings["merge_100k_s"].append((time.perf_counter() - start) * 100_000 / embeddings.shape[0])
    return {key: statistics.median(values) for key, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prepare", nargs=3, metavar=("WORK", "SIZE", "IMAGES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:  # in a child process: the parent stays free of torch while it measures
        prepare(Path(args.prepare[0]), int(args.prepare[1]), int(args.prepare[2]))
        return
    with tempfile.TemporaryDirectory(prefix="frpt-bench-ray-") as tmp:
        work = Path(tmp)
        (work / "merged").mkdir()
        command = [sys.executable, __file__, "--prepare", str(work), str(args.size), str(args.images)]
        if subprocess.run(command).returncode:
            raise SystemExit("preparing the model, export and images failed")
        runs, same = throughput(work, args.batch, args.repeats)
        start = startup(args.repeats)
        dim = int(np.load(work / "single0" / "embeddings.npy").shape[1])
        serial = serial_steps(work, dim, args.repeats)
    med = {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in runs.items()}
    print(
        f"{args.images} JPEGs -> {args.size} px, batch {args.batch}, {os.cpu_count()} cores, medians of {args.repeats}"
    )
    print(f"{'path':<34} {'wall s':>7} {'img/s e2e':>10} {'img/s in-run':>13}")
    for name, label in [("single", "frpt-embed (ORT CPU)"), ("ray", "frpt-embed --ray local (1 node)")]:
        print(f"{label:<34} {med[name]['wall']:7.2f} {med[name]['e2e']:10.1f} {med[name]['in_run']:13.1f}")
    ratio_e2e, ratio_run = med["ray"]["e2e"] / med["single"]["e2e"], med["ray"]["in_run"] / med["single"]["in_run"]
    print(f"Ray / single box: {ratio_e2e:.2f}x end to end, {ratio_run:.2f}x in-run; outputs identical: {same}")
    print(
        f"Ray start-up: import {start['import_s']:.2f} s, ray.init (local) {start['init_s']:.2f} s, first task "
        f"{start['first_task_s']:.2f} s, shutdown {start['shutdown_s']:.2f} s; in frpt-embed --ray (connect + "
        f"model probe) {med['ray']['startup']:.2f} s"
    )
    print(
        f"serial driver steps (D={dim}): listing {serial['list_per_file_us']:.1f} us/file, one 4096-row shard write "
        f"{serial['shard_write_s'] * 1000:.0f} ms, merge {serial['merge_100k_s']:.2f} s per 100k rows; decode "
        f"{serial['decode_per_core_img_s']:.0f} img/s per core"
    )


if __name__ == "__main__":
    main()
