"""The image decoder's two modes (``exact`` vs ``fast``): time per image, pixels, embeddings, and peak memory.

``frpt_runtime.images.load_image`` decodes for training and every runtime alike; the model config's ``decoder``
picks the mode. This script measures, in one run:

* **time** per image of each mode on (a) CUB-like ~500x375 JPEGs and (b) 12 MP phone-size 4000x3000 JPEGs
  (photo crops with sensor-like noise, quality 90), at the model's input size; A/B interleaved repetitions,
  medians, and the spread (max/min of the repetitions) so the machine's noise shows;
* **pixels**: max and mean |Δ| of ``fast`` vs ``exact``, and the share of pixels that differ;
* **embeddings**: the pretrained EfficientNet-Lite0 FRPT (ImageNet weights; DPP/CAH as initialised) on both
  decodes: max |Δ| of the L2-normalised embeddings, min cosine, top-1 neighbour agreement (``frpt_runtime.parity``);
* **pathological-but-valid images** (``--rss``): peak RSS of ``frpt-embed`` (ONNX Runtime CPU, default batch and
  workers) on a folder of thin (1x40000, 40000x1), huge-but-valid (9000x9000 RGB and RGBA PNG, 80 M pixels each
  under PIL's 89 M budget; 12 MP JPEGs), 16-bit and CMYK files, measured as that process's own VmHWM,
  and on 300 CUB-like JPEGs at the largest batch ONNX Runtime takes (its cap), each against the 1.5 GiB bound.

Usage: ``python benchmarks/bench_decode.py [--size 224] [--cub 48] [--phone 6] [--reps 5] [--rss | --rss-only]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "export"), str(REPO / "runtime")]

from frpt_runtime.families.frpt import DECODERS  # noqa: E402
from frpt_runtime.images import load_image  # noqa: E402


def make_photos(folder: Path, count: int, long_side: tuple[int, int], seed: int = 0) -> list[Path]:
    """``count`` photo-like JPEGs whose longer side is drawn from ``long_side``, aspect 4:3 or 3:4 (quality 90).

    Random crops of scikit-image's photos, resized bicubically, plus Gaussian noise (sigma 4) standing in for the
    sensor detail that makes real photos expensive to decode.
    """
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket(), data.immunohistochemistry()]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        ch, cw = int(rng.integers(h // 2, h + 1)), int(rng.integers(w // 2, w + 1))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        longer = int(rng.integers(long_side[0], long_side[1] + 1))
        size = (longer, longer * 3 // 4) if i % 3 else (longer * 3 // 4, longer)
        image = Image.fromarray(photo[top : top + ch, left : left + cw]).resize(size, Image.Resampling.BICUBIC)
        noisy = np.asarray(image, np.float32) + rng.normal(0.0, 4.0, (size[1], size[0], 3))
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def decode_all(paths: list[Path], size: int, decoder: str) -> np.ndarray:
    """uint8 ``[M, S, S, 3]`` of ``paths`` decoded with ``decoder`` (crop_pct 0.875)."""
    return np.stack([load_image(path, size, 0.875, decoder) for path in paths])


def time_modes(paths: list[Path], size: int, reps: int) -> dict[str, list[float]]:
    """Milliseconds per image of each decoder, one entry per repetition, the modes interleaved."""
    times: dict[str, list[float]] = {mode: [] for mode in DECODERS}
    for _ in range(reps):
        for mode in DECODERS:
            start = time.perf_counter()
            decode_all(paths, size, mode)
            times[mode].append((time.perf_counter() - start) * 1e3 / len(paths))
    return times


def embedding_effect(exact: np.ndarray, fast: np.ndarray, size: int) -> dict[str, float]:
    """max |Δ|, min cosine and top-1 agreement of the pretrained FRPT's embeddings of ``fast`` vs ``exact``."""
    import torch

    from frpt.model import create_model
    from frpt_runtime.families.frpt import FRPTConfig
    from frpt_runtime.parity import compare_embeddings

    torch.manual_seed(0)
    model = create_model(FRPTConfig(input_size=size, num_classes=10)).eval()
    with torch.inference_mode():
        ref, got = (model.embed_uint8(torch.from_numpy(images)).numpy() for images in (exact, fast))
    report = compare_embeddings(ref, got, "fp16")
    return {"max_abs": report.max_abs, "min_cosine": report.min_cosine, "top1": report.top1_agreement}


def regime_row(name: str, paths: list[Path], size: int, reps: int) -> None:
    """Print one regime's timing, pixel and embedding figures."""
    times = time_modes(paths, size, reps)
    exact, fast = decode_all(paths, size, "exact"), decode_all(paths, size, "fast")
    diff = np.abs(exact.astype(np.int16) - fast)
    effect = embedding_effect(exact, fast, size)
    med = {mode: statistics.median(values) for mode, values in times.items()}
    spread = {mode: max(values) / min(values) for mode, values in times.items()}
    print(
        f"{name:<22} exact {med['exact']:7.2f} ms/img (spread {spread['exact']:.2f}x)  fast {med['fast']:7.2f} ms/img "
        f"(spread {spread['fast']:.2f}x)  speed-up {med['exact'] / med['fast']:.2f}x"
    )
    print(
        f"{'':<22} pixels: max |Δ| {int(diff.max())}, mean |Δ| {diff.mean():.3f}, differ {np.mean(diff > 0):.3%}; "
        f"embeddings: max |Δ| {effect['max_abs']:.2e}, min cosine {effect['min_cosine']:.6f}, "
        f"top-1 agreement {effect['top1']:.1%} ({len(paths)} images)"
    )


def pathological_folder(folder: Path) -> None:
    """Valid files that cost memory: thin, huge-but-under-budget, 16-bit, CMYK, alpha."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40000, 1, 3), dtype=np.uint8)).save(folder / "thin_tall.png")
    Image.fromarray(rng.integers(0, 256, (1, 40000, 3), dtype=np.uint8)).save(folder / "thin_wide.png")
    for i in range(4):
        Image.new("RGB", (9000, 9000), (i * 40, 90, 200)).save(folder / f"huge_rgb_{i}.png")
        Image.new("RGBA", (9000, 9000), (200, i * 40, 90, 128)).save(folder / f"huge_rgba_{i}.png")
    Image.fromarray(np.full((3000, 4000), 40000, np.uint16)).save(folder / "deep_16bit.png")
    Image.new("CMYK", (4000, 3000), (10, 80, 160, 20)).save(folder / "cmyk.jpg", quality=90)
    make_photos(folder / "phone", 4, (4000, 4000), seed=3)


RSS_LIMIT_GIB = 1.5  # the memory bound for frpt-embed on pathological-but-valid images at the default batch


# Runs frpt-embed's CLI in a fresh interpreter and reports that process's VmHWM at exit. Not os.wait4's ru_maxrss:
# Linux folds the parent's high-water mark into a child's maxrss across fork + exec, so a child of this (large)
# process would report at least this process's peak.
_HWM_WRAPPER = (
    "import atexit, sys\n"
    "def _hwm():\n"
    "    line = next(l for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
    "    sys.stderr.write(f'VMHWM_KIB {line.split()[1]}\\n')\n"
    "atexit.register(_hwm)\n"
    "from frpt_runtime.cli import embed_app\n"
    "sys.argv = ['frpt-embed', *sys.argv[1:]]\n"
    "embed_app()\n"
)


def peak_rss(args: list[str]) -> tuple[float, float, int]:
    """Run ``frpt-embed ARGS``; its peak RSS in GiB (the process's own VmHWM), wall seconds and exit code."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _HWM_WRAPPER, *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)  # fmt: skip
    kib = [int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("VMHWM_KIB ")]
    return (kib[-1] / 2**20 if kib else float("nan")), time.perf_counter() - start, done.returncode


def rss_rows(size: int) -> None:
    """Peak RSS of ``frpt-embed`` against :data:`RSS_LIMIT_GIB`: the pathological folder per decoder at the default
    batch and workers, then 300 CUB-like JPEGs at the largest batch ONNX Runtime accepts at ``size`` (its cap)."""
    from frpt_runtime.backends.onnxruntime_backend import max_batch_for

    with tempfile.TemporaryDirectory(prefix="frpt-decode-") as tmp:
        work = Path(tmp)
        pathological_folder(work / "images")
        make_photos(work / "cub", 300, (450, 500), seed=5)
        count = len(list((work / "images").rglob("*.*")))
        cases = []
        for mode in DECODERS:
            onnx_path = work / f"{mode}.onnx"
            subprocess.run([sys.executable, __file__, "--export", str(onnx_path), str(size), mode], check=True)
            cases.append((f"{count} pathological files, decoder {mode}, batch 32", [work / "images", onnx_path]))
        cap = max_batch_for(size)
        cases.append((f"300 CUB-like JPEGs, decoder fast, batch {cap} (the cap)", [work / "cub", onnx_path, cap]))
        for i, (name, (folder, model, *batch)) in enumerate(cases):
            extra = ["--batch-size", str(batch[0])] if batch else []
            gib, wall, code = peak_rss([str(folder), "--onnx", str(model), "-o", str(work / f"e{i}"), *extra])
            verdict = "ok" if gib <= RSS_LIMIT_GIB and code == 0 else "OVER" if code == 0 else f"exit {code}"
            print(f"frpt-embed {name}: peak RSS {gib:.2f} GiB (limit {RSS_LIMIT_GIB}: {verdict}), {wall:.1f} s")


def export_model(out: Path, size: int, decoder: str) -> None:
    """fp32 ONNX export of the pretrained FRPT with ``decoder`` in its config (child process)."""
    import torch

    from frpt.model import create_model
    from frpt_export.onnx_export import export_onnx
    from frpt_runtime.families.frpt import FRPTConfig

    torch.manual_seed(0)
    export_onnx(create_model(FRPTConfig(input_size=size, num_classes=10, decoder=decoder)).eval(), out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--cub", type=int, default=48, help="CUB-like JPEGs (~500x375)")
    parser.add_argument("--phone", type=int, default=6, help="12 MP JPEGs (4000x3000)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rss", action="store_true", help="also peak RSS of frpt-embed on pathological images")
    parser.add_argument("--rss-only", action="store_true", help="only the peak RSS rows")
    parser.add_argument("--export", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export:
        export_model(Path(args.export[0]), int(args.export[1]), args.export[2])
        return
    if args.rss_only:
        rss_rows(args.size)
        return
    with tempfile.TemporaryDirectory(prefix="frpt-decode-") as tmp:
        cub = make_photos(Path(tmp) / "cub", args.cub, (450, 500))
        phone = make_photos(Path(tmp) / "phone", args.phone, (4000, 4000), seed=1)
        print(f"decoder modes at {args.size} px, crop 0.875, {os.cpu_count()} cores, {args.reps} interleaved reps")
        regime_row("CUB-like ~500x375", cub, args.size, args.reps)
        regime_row("12 MP 4000x3000", phone, args.size, args.reps)
    if args.rss:
        rss_rows(args.size)


if __name__ == "__main__":
    main()
