"""Throughput of ``frpt-embed`` against a naive per-image PyTorch loop, plus GPU backends where present.

One run, one table of ratios:

* CPU: ``frpt-embed --onnx`` (ONNX Runtime CPU, batched, decode pool) vs a naive loop over the same files
  (PIL open + torchvision resize/crop + ``model.embed_uint8`` one image at a time). Each side runs as its
  own process; wall time covers the whole command (imports, model load, decoding, inference), steady
  images/s the loop alone; peak host memory is that process's max RSS (``os.wait4``).
* GPU (when CUDA is present): PyTorch fp32 vs fp16 channels-last vs ONNX Runtime CUDA (fp16 graph, when
  onnxruntime has the CUDA provider) vs TensorRT (``--engine PLAN``, when TensorRT is installed), at
  batch 1 / 8 / 64 on decoded uint8 batches.

Usage: ``python benchmarks/bench_embed.py [--images 96] [--size 224] [--batch 32] [--engine model.plan]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def make_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` photo-like JPEGs (random crops of scikit-image photos, 320..640 px) in ``folder``."""
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        ch, cw = rng.integers(h // 2, h + 1), rng.integers(w // 2, w + 1)
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = Image.fromarray(photo[top : top + ch, left : left + cw])
        scale = rng.uniform(320, 640) / max(crop.size)
        path = folder / f"{i:05d}.jpg"
        crop.resize((round(crop.size[0] * scale), round(crop.size[1] * scale))).save(path, quality=90)
        paths.append(path)
    return paths


def naive_loop(ckpt: Path, folder: Path, out: Path) -> None:
    """The baseline: one image at a time through PyTorch (what a user writes first). Writes ``out`` JSON."""
    import torch
    from PIL import Image
    from torchvision import transforms

    from frpt.checkpoint import load_checkpoint

    torch.set_num_threads(os.cpu_count() or 1)
    model = load_checkpoint(ckpt).eval()
    cfg = model.config
    prep = transforms.Compose(
        [
            transforms.Resize(round(cfg.input_size / cfg.crop_pct), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(cfg.input_size),
        ]
    )
    paths = sorted(folder.rglob("*.jpg"))
    start = time.perf_counter()
    with torch.no_grad():
        for path in paths:
            pixels = np.asarray(prep(Image.open(path).convert("RGB")))
            model.embed_uint8(torch.from_numpy(pixels)[None])
    out.write_text(json.dumps({"loop_s": time.perf_counter() - start, "images": len(paths)}))


def timed_process(cmd: list[str]) -> tuple[float, float, int]:
    """Run ``cmd``; return ``(wall seconds, peak RSS MiB, exit status)`` of that process alone."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status:
        sys.stderr.write(proc.stderr.read().decode() if proc.stderr else "")
    return wall, usage.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status)


def prepare(work: Path, size: int, images: int) -> None:
    """Build the model (pretrained Lite0), save its checkpoint, export fp32 ONNX, write the JPEGs."""
    import torch

    from frpt.checkpoint import save_checkpoint
    from frpt.model import create_model
    from frpt_export.onnx_export import export_onnx
    from frpt_runtime.families.frpt import FRPTConfig

    torch.manual_seed(0)
    model = create_model(FRPTConfig(input_size=size, num_classes=10)).eval()
    save_checkpoint(model, work / "model.ckpt")
    export_onnx(model, work / "model.onnx", lowering="standard", precision="fp32")
    make_images(work / "images", images)


def cpu_rows(work: Path, images: int, size: int, batch: int) -> list[tuple[str, float, float, float, float]]:
    """``(name, wall s, end-to-end img/s, steady img/s, peak MiB)`` for frpt-embed (ORT CPU) and the naive loop.

    Every step runs in a child of this still-small process: a forked child's max RSS starts at its
    parent's, so the parent must not hold torch or a model while the measured children run.
    """
    if subprocess.run([sys.executable, __file__, "--prepare", str(work), str(size), str(images)]).returncode:
        raise SystemExit("preparing the model, export and images failed")
    ckpt, onnx_path, folder = work / "model.ckpt", work / "model.onnx", work / "images"

    embed_cmd = [
        str(Path(sys.executable).with_name("frpt-embed")),
        str(folder),
        "--onnx",
        str(onnx_path),
        "--out",
        str(work / "emb"),
        "--batch",
        str(batch),
        "--workers",
        str(min(4, os.cpu_count() or 1)),
    ]
    wall_e, rss_e, code_e = timed_process(embed_cmd)
    steady_e = json.loads((work / "emb" / "run.json").read_text())["images_per_s"]
    naive_json = work / "naive.json"
    wall_n, rss_n, code_n = timed_process(
        [sys.executable, __file__, "--naive", str(ckpt), str(folder), str(naive_json)]
    )
    if code_e or code_n:
        raise SystemExit(f"a benchmark process failed (frpt-embed {code_e}, naive {code_n})")
    naive = json.loads(naive_json.read_text())
    return [
        (f"frpt-embed ORT CPU b{batch}", wall_e, images / wall_e, steady_e, rss_e),
        ("naive PyTorch loop b1", wall_n, images / wall_n, naive["images"] / naive["loop_s"], rss_n),
    ]


def _throughput(run, batch: int, repeats: int) -> float:
    run(batch)  # warm-up (allocations, kernel selection)
    start = time.perf_counter()
    for _ in range(repeats):
        run(batch)
    return batch * repeats / (time.perf_counter() - start)


def gpu_rows(work: Path, size: int, engine: Path | None) -> list[tuple[str, int, float]]:
    """``(name, batch, img/s)`` per GPU backend present; empty without CUDA."""
    import copy

    import onnxruntime as ort
    import torch

    if not torch.cuda.is_available():
        return []
    from frpt.model import create_model
    from frpt_export.onnx_export import export_onnx
    from frpt_runtime.backends import Backend, create_backend
    from frpt_runtime.families.frpt import FRPTConfig

    model = create_model(FRPTConfig(input_size=size, num_classes=10)).eval()
    data = {b: np.random.default_rng(b).integers(0, 256, (b, size, size, 3), dtype=np.uint8) for b in (1, 8, 64)}

    def torch_runner(net: torch.nn.Module, half: bool) -> Callable[[int], None]:
        def run(b: int) -> None:
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=half):
                x = net.prepare(torch.from_numpy(data[b]).cuda(non_blocking=True))
                if half:
                    x = x.contiguous(memory_format=torch.channels_last)
                net(x).embedding.cpu()

        return run

    def backend_runner(backend: Backend) -> Callable[[int], None]:
        step = backend.info.max_batch or 64

        def run(b: int) -> None:
            pending = [backend.submit(data[b][i : i + step]) for i in range(0, b, step)]
            for item in pending:
                item.result()

        return run

    runners: dict[str, Callable[[int], None]] = {
        "PyTorch fp32": torch_runner(copy.deepcopy(model).cuda(), half=False),
        "PyTorch fp16 channels-last": torch_runner(
            copy.deepcopy(model).cuda().to(memory_format=torch.channels_last), half=True
        ),
    }
    if "CUDAExecutionProvider" in ort.get_available_providers():
        export_onnx(model, work / "fp16.onnx", lowering="standard", precision="fp16")
        runners["ORT CUDA fp16 graph"] = backend_runner(
            create_backend(onnx=work / "fp16.onnx", providers=["cuda"]).activate()
        )
    if engine is not None:
        runners["TensorRT"] = backend_runner(create_backend(engine=engine).activate())
    return [
        (name, b, _throughput(run, b, repeats=max(3, 256 // b))) for name, run in runners.items() for b in (1, 8, 64)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--engine", type=Path, default=None, help="TensorRT plan for the GPU table")
    parser.add_argument("--naive", nargs=3, metavar=("CKPT", "FOLDER", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--prepare", nargs=3, metavar=("WORK", "SIZE", "IMAGES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive:
        naive_loop(*map(Path, args.naive))
        return
    if args.prepare:
        prepare(Path(args.prepare[0]), int(args.prepare[1]), int(args.prepare[2]))
        return
    with tempfile.TemporaryDirectory(prefix="frpt-bench-") as tmp:
        work = Path(tmp)
        rows = cpu_rows(work, args.images, args.size, args.batch)
        print(f"CPU: {args.images} JPEGs -> {args.size}px, {os.cpu_count()} cores")
        print(f"{'path':<28} {'wall s':>8} {'img/s e2e':>10} {'img/s loop':>11} {'peak MiB':>9} {'x naive':>8}")
        base_e2e, base_loop = rows[-1][2], rows[-1][3]
        for name, wall, e2e, steady, rss in rows:
            print(
                f"{name:<28} {wall:8.2f} {e2e:10.1f} {steady:11.1f} {rss:9.0f} {e2e / base_e2e:7.2f}x"
                f"  (loop {steady / base_loop:.2f}x)"
            )
        gpu = gpu_rows(work, args.size, args.engine)
        if not gpu:
            print("GPU: no CUDA device here - GPU rows not measured")
        else:
            base = {b: ips for name, b, ips in gpu if name == "PyTorch fp32"}
            print(f"{'GPU path':<28} {'batch':>5} {'img/s':>9} {'x fp32':>7}")
            for name, b, ips in gpu:
                print(f"{name:<28} {b:5d} {ips:9.1f} {ips / base[b]:6.2f}x")


if __name__ == "__main__":
    main()
