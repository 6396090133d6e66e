"""Nearest-neighbour search: our index (FAISS) vs numpy brute force, and each approximate kind's recall and speed.

One run, one table. Per case (gallery size x data kind, each in its own process so its peak RSS is its own):

* gallery: ``N`` L2-normalised float32 vectors, ``D = 256``, either *uniform* (normalised Gaussian: no
  neighbourhood structure, the worst case for approximate search) or *clustered* (``N / 100`` random unit
  centres, each point = centre + Gaussian noise of norm ~1, renormalised: cosine ~0.7 to its centre, like
  trained embeddings of ~100 images per class); 1000 fresh queries from the same distribution; k = 10;
* exact: :meth:`frpt_runtime.search.index.Index.search` on a ``flat`` index vs numpy brute force (float32 matmul
  against the gallery in 64k-row blocks + ``argpartition`` + a final sort), repetitions interleaved, medians;
  the ratio is numpy time / ours; the rows are checked to agree;
* ``hnsw`` / ``ivf`` with the documented defaults: build time (without the build-time recall sample),
  recall@10 of the 1000 queries against the exact top 10 (a result tying the exact 10th score counts),
  batch latency (1000 queries at once) and single-query latency (median of 200 one-query calls), all
  interleaved with the exact runs;
* Recall@K for ``frpt-eval --embeddings`` (``--recall-sizes``, clustered, labels = clusters):
  :func:`frpt_runtime.search.recall.indexed_recall_at_k` vs the reference :func:`frpt_runtime.metrics.recall_at_k`
  (``[M, M]`` float64 matrix + full sort), interleaved, medians, results checked equal;
* memory: RSS growth over each index build (``/proc/self/statm``) and the case process's peak RSS
  (``resource.getrusage``).

Threads: both contenders get the same count (``--threads``, default 1: ``OMP_NUM_THREADS`` for FAISS's OpenMP,
``OPENBLAS_NUM_THREADS`` for numpy's BLAS). On a box whose cores are shared with other busy processes,
OpenMP's barriers make multi-threaded FAISS many times slower (measured here under load: one 20k-row flat
query 16 ms with 2 threads vs 0.75 ms with 1), so single-threaded figures are the reproducible ones.

Usage: ``python benchmarks/bench_search.py [--sizes 100000 1000000] [--data uniform clustered] [--reps 3]
[--threads 1]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

DIM, QUERIES, K, BLOCK = 256, 1000, 10, 65536


def vectors(count: int, data: str, rng: np.random.Generator, centres: np.ndarray | None) -> np.ndarray:
    """``count`` unit float32 rows: normalised Gaussian (``uniform``), or around ``centres`` (``clustered``)."""
    rows = rng.standard_normal((count, DIM), dtype=np.float32)
    if data == "clustered":
        assert centres is not None
        rows = centres[rng.integers(0, len(centres), count)] + rows / np.float32(np.sqrt(DIM))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def numpy_topk(gallery: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: matmul per gallery block, argpartition, merge; ``(scores, rows)`` ``[Q, k]`` best first."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_r = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(gallery), BLOCK):
        sims = queries @ gallery[start : start + BLOCK].T
        part = np.argpartition(-sims, min(k, sims.shape[1] - 1), axis=1)[:, :k]
        best_s = np.concatenate([best_s, np.take_along_axis(sims, part, 1)], axis=1)
        best_r = np.concatenate([best_r, part + start], axis=1)
        keep = np.argpartition(-best_s, min(k, best_s.shape[1] - 1), axis=1)[:, :k]
        best_s, best_r = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_r, keep, 1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_s, order, 1), np.take_along_axis(best_r, order, 1)


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_case(size: int, data: str, reps: int) -> dict[str, Any]:
    """One gallery: every measurement of the module docstring; returns a JSON-ready dict."""
    from frpt_runtime.search.index import Index
    from frpt_runtime.search.params import DEFAULT_PARAMS

    rng = np.random.default_rng(0)
    centres = vectors(max(1, size // 100), "uniform", rng, None) if data == "clustered" else None
    gallery = vectors(size, data, rng, centres)
    queries = vectors(QUERIES, data, rng, centres)
    paths = [f"g/{i}" for i in range(size)]
    labels = ["."] * size
    sha = "0" * 64
    result: dict[str, Any] = {"size": size, "data": data, "dim": DIM, "queries": QUERIES, "k": K}
    indexes: dict[str, Index] = {}
    for kind in ("flat", "hnsw", "ivf"):
        before = rss_bytes()
        start = time.perf_counter()
        indexes[kind] = Index.build(gallery, paths, labels, sha, kind, recall_queries=0)
        result[kind] = {
            "build_s": time.perf_counter() - start,
            "index_rss_gib": (rss_bytes() - before) / 2**30,
            "params": indexes[kind].params,
        }
        print(f"  [{size} {data}] built {kind} in {result[kind]['build_s']:.1f} s", file=sys.stderr, flush=True)
    truth_s, truth_r = numpy_topk(gallery, queries, K)
    times: dict[str, list[float]] = {name: [] for name in ("numpy", "flat", "hnsw", "ivf")}
    single: dict[str, list[float]] = {name: [] for name in ("numpy", "flat", "hnsw", "ivf")}
    picks = rng.choice(QUERIES, 200, replace=False)
    for _ in range(reps):  # interleaved: every contender once per repetition
        times["numpy"].append(timed(lambda: numpy_topk(gallery, queries, K)))
        for kind, index in indexes.items():
            times[kind].append(timed(lambda index=index: index.search(queries, K)))
    for q in picks:
        one = queries[q : q + 1]
        single["numpy"].append(timed(lambda one=one: numpy_topk(gallery, one, K)))
        for kind, index in indexes.items():
            single[kind].append(timed(lambda index=index, one=one: index.search(one, K)))
    for name in times:
        entry = result.setdefault(name, {})
        entry["batch_ms"] = 1e3 * statistics.median(times[name])
        entry["single_ms"] = 1e3 * statistics.median(single[name])
    for kind, index in indexes.items():
        scores, rows = index.search(queries, K)
        found = (rows >= 0) & (scores >= truth_s[:, K - 1 : K] - 1e-5)
        result[kind]["recall@10"] = float(found.mean())
        if kind == "flat":
            result[kind]["rows_equal_numpy"] = float((rows == truth_r).mean())
    result["numpy_over_flat"] = result["numpy"]["batch_ms"] / result["flat"]["batch_ms"]
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result["defaults"] = {kind: DEFAULT_PARAMS[kind] for kind in ("hnsw", "ivf")}
    return result


def run_recall_case(size: int, reps: int) -> dict[str, Any]:
    """Recall@1/2/4/8 of a clustered set through the index vs the reference; JSON-ready timings."""
    from frpt_runtime.metrics import recall_at_k
    from frpt_runtime.search.recall import indexed_recall_at_k

    rng = np.random.default_rng(0)
    centres = vectors(max(1, size // 10), "uniform", rng, None)
    labels = rng.integers(0, len(centres), size)
    rows = centres[labels] + rng.standard_normal((size, DIM), dtype=np.float32) / np.float32(np.sqrt(DIM))
    times: dict[str, list[float]] = {"reference": [], "index": []}
    same = True
    for _ in range(reps):
        start = time.perf_counter()
        reference = recall_at_k(rows, labels)
        times["reference"].append(time.perf_counter() - start)
        start = time.perf_counter()
        ours = indexed_recall_at_k(rows, labels)
        times["index"].append(time.perf_counter() - start)
        same = same and ours == reference
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "size": size,
        "reference_s": medians["reference"],
        "index_s": medians["index"],
        "speedup": medians["reference"] / medians["index"],
        "identical": same,
        "recall": reference,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| gallery | data | kind | build s | recall@10 | 1k queries ms | 1 query ms | vs numpy (1k) | index RSS GiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        base = res["numpy"]["batch_ms"]
        lines.append(
            f"| {res['size']:,} | {res['data']} | numpy brute force | - | 1.0 | {base:.0f} | "
            f"{res['numpy']['single_ms']:.2f} | 1.0x | - |"
        )
        for kind in ("flat", "hnsw", "ivf"):
            entry = res[kind]
            params = " ".join(f"{k}={v}" for k, v in entry["params"].items())
            lines.append(
                f"| {res['size']:,} | {res['data']} | {f'{kind} {params}'.strip()} | {entry['build_s']:.1f} | "
                f"{entry['recall@10']:.3f} | {entry['batch_ms']:.0f} | {entry['single_ms']:.2f} | "
                f"{base / entry['batch_ms']:.1f}x | {entry['index_rss_gib']:.2f} |"
            )
        peak = res["peak_rss_gib"]
        lines.append(f"| {res['size']:,} | {res['data']} | peak RSS of the case | | | | | | {peak:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--data", nargs="+", default=["uniform", "clustered"], choices=["uniform", "clustered"])
    parser.add_argument("--recall-sizes", type=int, nargs="*", default=[10_000], help="Recall@K comparison sizes")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="threads for FAISS and numpy's BLAS alike")
    parser.add_argument("--json-out", help="also write the raw results here")
    parser.add_argument("--case", nargs=2, metavar=("SIZE", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        size, data = int(args.case[0]), args.case[1]
        print(json.dumps(run_recall_case(size, args.reps) if data == "recall" else run_case(size, data, args.reps)))
        return
    import faiss

    print(
        f"faiss {faiss.__version__}, {os.cpu_count()} CPUs, {args.threads} thread(s), D={DIM}, {QUERIES} queries, "
        f"k={K}, load average {os.getloadavg()[0]:.1f}",
        file=sys.stderr,
    )
    threads = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)

    def case(size: int, data: str) -> dict[str, Any]:
        command = [sys.executable, __file__, "--case", str(size), data, "--reps", str(args.reps)]
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True, env=env)
        return json.loads(done.stdout.strip().splitlines()[-1])

    recalls = [case(size, "recall") for size in args.recall_sizes]
    results = []
    for size in args.sizes:
        for data in args.data:
            results.append(case(size, data))
            print(table(results[-1:]), file=sys.stderr, flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}", file=sys.stderr)
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump({"search": results, "recall": recalls}, handle, indent=2)
    print(table(results))
    for res in recalls:
        print(
            f"\nRecall@K of {res['size']:,} clustered rows: reference recall_at_k {res['reference_s']:.2f} s, "
            f"through the index {res['index_s']:.2f} s ({res['speedup']:.1f}x), identical: {res['identical']}, "
            f"peak RSS {res['peak_rss_gib']:.2f} GiB"
        )


if __name__ == "__main__":
    main()
