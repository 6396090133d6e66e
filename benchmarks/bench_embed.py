"""``frpt-embed`` (ONNX Runtime) against the strong PyTorch baselines, end to end and in steady state; GPU rows too.

One run, one table of ratios per image-size regime ((a) CUB-like ~500x375 JPEGs, (b) 12 MP 4000x3000 JPEGs):

* ``frpt-embed ORT``   -- the command's library path (``embed_folder`` on ``OnnxRuntimeBackend`` over the default
  export: decode threads ahead of ONNX Runtime CPU, batch ``--batch``);
* ``PyTorch eager``    -- batched, channels-last, ``inference_mode``, threads = cores, the same decoder
  (``load_image`` with the model config's decoder) in a ``DataLoader`` with as many worker processes as
  ``frpt-embed`` has decode threads;
* ``torch.compile``    -- the same, the model's ``embed`` compiled (inductor; the last batch padded to full size);
* ``naive loop``       -- what a user writes first: PIL + torchvision ``Resize``/``CenterCrop`` + ``embed_uint8``,
  one image at a time.

The 12 MP regime runs at batch ``min(--batch, 8)`` so that its steady state spans several batches. Each runs in its
own process, ``--reps`` rounds with the four interleaved; medians are reported and the spread
(max/min of the end-to-end wall times) shows how noisy the machine was. *End to end* = the whole process (imports,
model load, compilation, decoding, inference); *steady* = images after the first batch over the time from the end
of the first batch to the end of the last; *peak MiB* = the process tree's largest sum of PSS (``/proc``, sampled
every 0.1 s; the DataLoader's workers included).

Then the model alone on decoded uint8 batches of 1 / 8 / 32 (ONNX Runtime backend vs PyTorch eager channels-last vs
``torch.compile``, interleaved, median per image), and a profile of where ``frpt-embed``'s time goes (decode and
resize per image on one core, waiting for decoded batches, inference). With a CUDA GPU: PyTorch fp32 and fp16
(autocast) channels-last, ONNX Runtime CUDA (fp16 graph, IO binding with device-resident input) and TensorRT
(``--engine PLAN``, or a plan built here when full TensorRT is importable) at batch 1 / 8 / 64.

Usage: ``python benchmarks/bench_embed.py [--size 224] [--cub 128] [--phone 24] [--batch 32] [--reps 3]``
``[--gpu-only] [--engine model.plan]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "export"), str(REPO / "runtime"), str(Path(__file__).parent)]

from bench_decode import make_photos  # noqa: E402

PIPELINES = ("frpt-embed ORT", "PyTorch eager", "torch.compile", "naive loop")
CORES = os.cpu_count() or 1
WORKERS = min(4, CORES)  # frpt-embed's default --workers


# ---- children: each prints one JSON line -----------------------------------------------------------------------


def _steady(stamps: list[tuple[float, int]]) -> float:
    """Images per second after the first batch (``stamps``: completion time and size of each batch)."""
    if len(stamps) < 2:
        return float("nan")
    return sum(n for _, n in stamps[1:]) / (stamps[-1][0] - stamps[0][0])


def child_embed(onnx_path: str, folder: str, out: str, batch: int) -> dict[str, Any]:
    from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from frpt_runtime.embed import embed_folder

    stamps: list[tuple[float, int]] = []

    class Timed(OnnxRuntimeBackend):
        def _submit(self, images: np.ndarray):
            pending = super()._submit(images)
            stamps.append((time.perf_counter(), len(images)))
            return pending

    with Timed(onnx_path) as backend:
        embed_folder(folder, backend, out, batch=batch, workers=WORKERS)
    run = json.loads((Path(out) / "run.json").read_text())
    return {"steady": _steady(stamps), "wait_decode_s": run["wait_decode_s"], "backend_s": run["backend_s"]}


def child_torch(ckpt: str, folder: str, batch: int, compiled: bool) -> dict[str, Any]:
    import torch
    from torch.utils.data import DataLoader, Dataset

    from frpt.checkpoint import load_checkpoint
    from frpt_runtime.images import load_image

    torch.set_num_threads(CORES)
    model = load_checkpoint(ckpt).eval().to(memory_format=torch.channels_last)
    cfg, paths = model.config, sorted(Path(folder).rglob("*.jpg"))

    class Decoded(Dataset):
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int):
            return torch.from_numpy(load_image(paths[i], cfg.input_size, cfg.crop_pct, cfg.decoder))

    embed = torch.compile(model.embed) if compiled else model.embed
    stamps = []
    with torch.inference_mode():
        for images in DataLoader(Decoded(), batch_size=batch, num_workers=WORKERS):
            n = len(images)
            if compiled and n < batch:  # one graph: pad the last batch
                images = torch.cat([images, images[-1:].expand(batch - n, -1, -1, -1)])
            embed(model.prepare(images).contiguous(memory_format=torch.channels_last))[:n]
            stamps.append((time.perf_counter(), n))
    return {"steady": _steady(stamps)}


def child_naive(ckpt: str, folder: str) -> dict[str, Any]:
    import torch
    from PIL import Image
    from torchvision import transforms

    from frpt.checkpoint import load_checkpoint

    torch.set_num_threads(CORES)
    model = load_checkpoint(ckpt).eval()
    cfg = model.config
    bicubic = transforms.InterpolationMode.BICUBIC
    prep = transforms.Compose(
        [
            transforms.Resize(round(cfg.input_size / cfg.crop_pct), interpolation=bicubic),
            transforms.CenterCrop(cfg.input_size),
        ]
    )
    stamps = []
    for path in sorted(Path(folder).rglob("*.jpg")):
        pixels = np.asarray(prep(Image.open(path).convert("RGB")))
        model.embed_uint8(torch.from_numpy(pixels)[None])
        stamps.append((time.perf_counter(), 1))
    return {"steady": _steady(stamps)}


def child_model(onnx_path: str, ckpt: str, reps: int) -> dict[str, Any]:
    """Milliseconds per image of the model alone at batch 1 / 8 / 32, the three implementations interleaved."""
    import torch

    from frpt.checkpoint import load_checkpoint
    from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    torch.set_num_threads(CORES)
    model = load_checkpoint(ckpt).eval().to(memory_format=torch.channels_last)
    size = model.config.input_size
    compiled = torch.compile(model.embed)
    backend = OnnxRuntimeBackend(onnx_path).activate()

    def torch_run(fn):
        return lambda x: fn(model.prepare(torch.from_numpy(x)).contiguous(memory_format=torch.channels_last))

    impls = {"ORT": backend.infer, "eager": torch_run(model.embed), "compile": torch_run(compiled)}
    times: dict[str, dict[int, list[float]]] = {name: {b: [] for b in (1, 8, 32)} for name in impls}
    with torch.inference_mode():
        for b in (1, 8, 32):
            x = np.random.default_rng(b).integers(0, 256, (b, size, size, 3), dtype=np.uint8)
            for fn in impls.values():
                fn(x)  # warm-up (and compilation)
            for _ in range(reps):
                for name, fn in impls.items():
                    start = time.perf_counter()
                    for _ in range(max(1, 8 // b)):
                        fn(x)
                    times[name][b].append((time.perf_counter() - start) * 1e3 / (b * max(1, 8 // b)))
    return {name: {str(b): statistics.median(v) for b, v in by.items()} for name, by in times.items()} | {
        "spread": max(max(v) / min(v) for by in times.values() for v in by.values())
    }


def child_profile(folder: str, ckpt_config: str) -> dict[str, Any]:
    """Decode (open + load, the draft included) vs the rest (colour, resize, crop) per image, on one thread."""
    from PIL import Image

    from frpt_runtime.families.frpt import FRPTConfig
    from frpt_runtime.images import load_image

    cfg = FRPTConfig.from_json(ckpt_config)
    paths = sorted(Path(folder).rglob("*.jpg"))

    def decode_only(path: Path) -> None:
        with Image.open(path) as image:
            if cfg.decoder == "fast":
                image.draft(image.mode, (2 * round(cfg.input_size / cfg.crop_pct),) * 2)
            image.load()

    def best_ms(fn) -> float:  # per image, the faster of two passes (the files are in the page cache by then)
        passes = []
        for _ in range(2):
            start = time.perf_counter()
            for path in paths:
                fn(path)
            passes.append((time.perf_counter() - start) * 1e3 / len(paths))
        return min(passes)

    decode = best_ms(decode_only)
    total = best_ms(lambda path: load_image(path, cfg.input_size, cfg.crop_pct, cfg.decoder))
    return {"decode_ms": decode, "resize_ms": max(0.0, total - decode)}


def child_prepare(work: str, size: int, cub: int, phone: int) -> dict[str, Any]:
    """Pretrained-Lite0 FRPT checkpoint, its default ONNX export, and the two image folders."""
    import torch

    from frpt.checkpoint import save_checkpoint
    from frpt.model import create_model
    from frpt_export.onnx_export import export_onnx
    from frpt_runtime.families.frpt import FRPTConfig

    torch.manual_seed(0)
    model = create_model(FRPTConfig(input_size=size, num_classes=10)).eval()
    save_checkpoint(model, Path(work) / "model.ckpt")
    report = export_onnx(model, Path(work) / "model.onnx")
    make_photos(Path(work) / "cub", cub, (450, 500))
    make_photos(Path(work) / "phone", phone, (4000, 4000), seed=1)
    return {"config": model.config.to_json(), "nodes": report.num_nodes}


CHILDREN = {
    "embed": child_embed,
    "torch": child_torch,
    "naive": child_naive,
    "model": child_model,
    "profile": child_profile,
    "prepare": child_prepare,
}


# ---- the parent: processes, memory, tables -----------------------------------------------------------------------


def _tree_pss_mib(root: int) -> float:
    """Sum of PSS over ``root`` and its descendants (MiB), from ``/proc``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    total = 0.0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024.0
        except OSError:
            continue
    return total


def run_child(kind: str, *args: Any) -> tuple[dict[str, Any], float, float]:
    """Run a child; return ``(its JSON, wall seconds, peak tree PSS MiB)``."""
    start = time.perf_counter()
    cmd = [sys.executable, __file__, "--child", kind, json.dumps(list(args))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, done = [0.0], threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], _tree_pss_mib(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"benchmark child {kind} failed ({proc.returncode}):\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1]), time.perf_counter() - start, peak[0]


def pipeline_rows(
    work: Path, regime: str, images: int, batch: int, reps: int
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Median end-to-end wall, steady img/s and peak MiB of the four pipelines on one folder, and frpt-embed's
    median clock (``wait``: waiting for decoded batches, ``backend``: inference, ``wall``: the process)."""
    folder, ckpt, onnx_path = str(work / regime), str(work / "model.ckpt"), str(work / "model.onnx")
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in PIPELINES}
    clock: list[tuple[float, float, float]] = []
    for rep in range(reps):
        for name in PIPELINES:
            if name == "frpt-embed ORT":
                args: tuple[Any, ...] = ("embed", onnx_path, folder, str(work / f"emb_{regime}_{rep}"), batch)
            elif name == "naive loop":
                args = ("naive", ckpt, folder)
            else:
                args = ("torch", ckpt, folder, batch, name == "torch.compile")
            result, wall, peak = run_child(*args)
            runs[name].append((wall, result["steady"], peak))
            if name == "frpt-embed ORT":
                clock.append((result["wait_decode_s"], result["backend_s"], wall))
    rows = {}
    for name, values in runs.items():
        walls, steadies, peaks = zip(*values, strict=True)
        rows[name] = {
            "wall": statistics.median(walls),
            "e2e": images / statistics.median(walls),
            "steady": statistics.median(steadies),
            "peak": statistics.median(peaks),
            "spread": max(walls) / min(walls),
        }
    return rows, {
        key: statistics.median(v) for key, v in zip(("wait", "backend", "wall"), zip(*clock, strict=True), strict=True)
    }


def print_pipelines(regime: str, images: int, batch: int, rows: dict[str, dict[str, float]]) -> None:
    naive, eager = rows["naive loop"], rows["PyTorch eager"]
    print(f"\n{regime}: {images} JPEGs, batch {batch}, {CORES} cores, {WORKERS} decode workers/threads")
    print(
        f"{'pipeline':<16} {'wall s':>7} {'img/s e2e':>9} {'img/s steady':>12} {'peak MiB':>8} {'x naive e2e':>11} "
        f"{'x naive steady':>14} {'x eager steady':>14} {'spread':>6}"
    )
    for name in PIPELINES:
        r = rows[name]
        print(
            f"{name:<16} {r['wall']:7.1f} {r['e2e']:9.2f} {r['steady']:12.2f} {r['peak']:8.0f} "
            f"{r['e2e'] / naive['e2e']:10.2f}x {r['steady'] / naive['steady']:13.2f}x "
            f"{r['steady'] / eager['steady']:13.2f}x {r['spread']:5.2f}x"
        )


def print_model(result: dict[str, Any]) -> None:
    print(f"\nmodel alone on decoded uint8 batches (ms per image, median; spread {result['spread']:.2f}x)")
    print(f"{'batch':>5} {'ORT':>8} {'eager':>8} {'compile':>8} {'ORT x eager':>11} {'compile x eager':>15}")
    for b in ("1", "8", "32"):
        ort, eager, comp = result["ORT"][b], result["eager"][b], result["compile"][b]
        print(f"{b:>5} {ort:8.1f} {eager:8.1f} {comp:8.1f} {eager / ort:10.2f}x {eager / comp:14.2f}x")


def print_profile(regime: str, profile: dict[str, float], clock: dict[str, float], images: int) -> None:
    decode_cpu = (profile["decode_ms"] + profile["resize_ms"]) * images / 1e3
    print(
        f"profile {regime}: per image on one core: decode {profile['decode_ms']:.2f} ms + colour/resize/crop "
        f"{profile['resize_ms']:.2f} ms (= {decode_cpu:.1f} core-s for the folder); frpt-embed: inference "
        f"{clock['backend']:.1f} s, waiting for decoded batches {clock['wait']:.1f} s, of {clock['wall']:.1f} s wall"
    )


def gpu_rows(work: Path, size: int, engine: Path | None) -> list[tuple[str, int, float]]:
    """``(name, batch, img/s)`` per GPU path present; empty without CUDA."""
    import copy

    import torch

    if not torch.cuda.is_available():
        return []
    from frpt.model import create_model
    from frpt_export.graph import LowerOptions
    from frpt_export.onnx_export import export_onnx
    from frpt_runtime.contract import Precision
    from frpt_runtime.errors import FrptError
    from frpt_runtime.families.frpt import FRPTConfig

    try:
        model = create_model(FRPTConfig(input_size=size, num_classes=10)).eval()
    except FrptError:  # no packaged ImageNet weights on this box: speed does not depend on them
        model = create_model(FRPTConfig(input_size=size, num_classes=10), random_init=True).eval()
    data = {b: np.random.default_rng(b).integers(0, 256, (b, size, size, 3), dtype=np.uint8) for b in (1, 8, 64)}
    runners = {
        "PyTorch fp32 channels-last": _torch_runner(copy.deepcopy(model), data, half=False),
        "PyTorch fp16 channels-last": _torch_runner(copy.deepcopy(model), data, half=True),
    }
    fp16_onnx = work / "fp16.onnx"
    export_onnx(model, fp16_onnx, LowerOptions(precision=Precision.fp16))
    runners.update(_ort_cuda_runner(fp16_onnx, data))
    runners.update(_tensorrt_runner(work, fp16_onnx, engine, data))
    return [(name, b, _throughput(run, b)) for name, run in runners.items() for b in data]


def _torch_runner(model: Any, data: dict[int, np.ndarray], half: bool):
    import torch

    model = model.cuda().to(memory_format=torch.channels_last)
    device_data = {b: torch.from_numpy(x).cuda() for b, x in data.items()}

    def run(b: int) -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=half):
            model.embed(model.prepare(device_data[b]).contiguous(memory_format=torch.channels_last))
        torch.cuda.synchronize()

    return run


def _ort_cuda_runner(onnx_path: Path, data: dict[int, np.ndarray]) -> dict[str, Any]:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print("GPU: ONNX Runtime has no CUDA provider here (install onnxruntime-gpu) - ORT CUDA row not measured")
        return {}
    session = ort.InferenceSession(str(onnx_path), providers=["CUDAExecutionProvider"])
    inputs = {b: ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0) for b, x in data.items()}

    def run(b: int) -> None:
        binding = session.io_binding()
        binding.bind_ortvalue_input("images", inputs[b])
        binding.bind_output("embedding", "cuda")
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()

    return {"ORT CUDA fp16 graph (IO binding)": run}


def _tensorrt_runner(work: Path, onnx_path: Path, engine: Path | None, data: dict[int, np.ndarray]) -> dict[str, Any]:
    from frpt_runtime.backends import create_backend
    from frpt_runtime.errors import FrptError

    if engine is None:
        try:
            from frpt_export.trt_build import BatchProfile, build_engine

            engine = work / "fp16.plan"
            build_engine(onnx_path, engine, BatchProfile(1, 8, 64))
        except (FrptError, ImportError) as exc:
            print(f"GPU: no TensorRT engine ({' '.join(str(exc).split())[:160]}) - TensorRT row not measured")
            return {}
    try:
        backend = create_backend(engine=engine).activate()
    except FrptError as exc:
        print(f"GPU: TensorRT cannot run {engine} here ({exc}) - TensorRT row not measured")
        return {}

    def run(b: int) -> None:
        step = backend.info.max_batch or b
        for pending in [backend.submit(data[b][i : i + step]) for i in range(0, b, step)]:
            pending.result()

    return {"TensorRT (frpt backend, host I/O)": run}


def _throughput(run: Any, batch: int, repeats: int = 20) -> float:
    run(batch)  # warm-up: allocations, algorithm selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def print_gpu(work: Path, size: int, engine: Path | None) -> None:
    rows = gpu_rows(work, size, engine)
    if not rows:
        print("\nGPU: no CUDA device here - GPU rows not measured")
        return
    import torch

    base = {b: ips for name, b, ips in rows if name == "PyTorch fp32 channels-last"}
    print(f"\nGPU {torch.cuda.get_device_name()} at {size} px (img/s, median of 20 after warm-up)")
    print(f"{'GPU path':<34} {'batch':>5} {'img/s':>9} {'x fp32':>7}")
    for name, b, ips in rows:
        print(f"{name:<34} {b:5d} {ips:9.1f} {ips / base[b]:6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--cub", type=int, default=128, help="CUB-like ~500x375 JPEGs")
    parser.add_argument("--phone", type=int, default=24, help="12 MP 4000x3000 JPEGs")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3, help="interleaved rounds (medians reported)")
    parser.add_argument("--gpu-only", action="store_true", help="only the GPU rows")
    parser.add_argument("--engine", type=Path, default=None, help="TensorRT plan for the GPU rows")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](*json.loads(args.child[1]))))
        return
    with tempfile.TemporaryDirectory(prefix="frpt-bench-") as tmp:
        work = Path(tmp)
        if args.gpu_only:
            print_gpu(work, args.size, args.engine)
            return
        prepared, _, _ = run_child("prepare", str(work), args.size, args.cub, args.phone)
        print(
            f"machine: {CORES} cores; model: pretrained Lite0 FRPT at {args.size} px, default export "
            f"({prepared['nodes']} nodes), decoder {json.loads(prepared['config'])['decoder']}, batch {args.batch}"
        )
        for regime, count, batch in (("cub", args.cub, args.batch), ("phone", args.phone, min(args.batch, 8))):
            rows, clock = pipeline_rows(work, regime, count, batch, args.reps)
            print_pipelines({"cub": "CUB-like ~500x375", "phone": "12 MP 4000x3000"}[regime], count, batch, rows)
            profile, _, _ = run_child("profile", str(work / regime), prepared["config"])
            print_profile(regime, profile, clock, count)
        model, _, _ = run_child("model", str(work / "model.onnx"), str(work / "model.ckpt"), max(3, args.reps))
        print_model(model)
        print_gpu(work, args.size, args.engine)


if __name__ == "__main__":
    main()
