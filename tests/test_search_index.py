"""The search index (FAISS): exact and approximate kinds, the checked sidecar, add, and Recall@K through the index."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

faiss = pytest.importorskip("faiss", reason="FAISS is not installed (pip install 'frpt-toolkit[search]')")

from frpt_runtime.errors import FrptError  # noqa: E402
from frpt_runtime.metrics import recall_at_k  # noqa: E402
from frpt_runtime.search.index import Index, drop_excluded, normalize_rows  # noqa: E402 - after the importorskip
from frpt_runtime.search.params import DEFAULT_PARAMS, default_nlist  # noqa: E402
from frpt_runtime.search.recall import indexed_recall_at_k, score_error_bound  # noqa: E402
from frpt_runtime.search.sidecar import sidecar_path  # noqa: E402

SHA = "a" * 64
OTHER_SHA = "b" * 64


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def clustered(count: int, dim: int, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` unit rows around ``clusters`` random unit centres (cosine ~0.7 to the centre) and their cluster."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((clusters, dim)))
    which = rng.integers(0, clusters, count)
    return unit(centres[which] + rng.standard_normal((count, dim)) / np.sqrt(dim)), which


def gallery(count: int, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    rows = unit(np.random.default_rng(seed).standard_normal((count, dim)))
    return rows, [f"/g/c{i % 3}/{seed}_{i}.png" for i in range(count)], [f"c{i % 3}" for i in range(count)]


def test_flat_is_exact_and_leaves_self_out() -> None:
    rows, paths, labels = gallery(200)
    index = Index.build(rows, paths, labels, SHA)
    queries = rows[:7] * 3.0  # scale does not matter: cosine
    scores, hits = index.search(queries, 5)
    expected = np.argsort(-(unit(queries) @ rows.T), axis=1, kind="stable")[:, :5]
    assert scores.dtype == np.float32 and hits.dtype == np.int64 and scores.shape == hits.shape == (7, 5)
    np.testing.assert_array_equal(hits, expected)
    assert (hits[:, 0] == np.arange(7)).all() and np.all(scores[:, 0] >= 0.9999)
    own = np.arange(7, dtype=np.int64)
    _, hits_x = index.search(queries, 5, exclude_rows=own)
    np.testing.assert_array_equal(hits_x, np.argsort(-(unit(queries) @ rows.T), axis=1, kind="stable")[:, 1:6])
    assert not (hits_x == own[:, None]).any() and index.recall is None and index.params == {}


def test_drop_excluded_takes_the_match_or_the_last_column() -> None:
    scores = np.array([[0.9, 0.8, 0.7], [0.9, 0.8, 0.7], [0.5, -1e38, -1e38]], np.float32)
    rows = np.array([[4, 2, 9], [4, 2, 9], [3, -1, -1]], np.int64)
    kept_s, kept_r = drop_excluded(scores, rows, np.array([2, 7, -1], np.int64), 2)
    assert kept_r.tolist() == [[4, 9], [4, 2], [3, -1]] and kept_s[0].tolist() == pytest.approx([0.9, 0.7])


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_defaults_reach_095_recall_on_clustered_vectors(kind: str) -> None:
    rows, _ = clustered(4000, 64, 40, seed=1)
    paths, labels = [f"/g/{i}.png" for i in range(4000)], ["."] * 4000
    index = Index.build(rows, paths, labels, SHA, kind)
    expected = dict(DEFAULT_PARAMS[kind])
    if kind == "ivf":
        expected["nlist"] = default_nlist(4000)
    assert index.params == expected and index.recall is not None
    assert index.recall.k == 10 and index.recall.queries == 1000 and index.recall.recall >= 0.95, index.recall
    fresh, _ = clustered(300, 64, 40, seed=1)  # same centres (same seed), other points than the gallery's
    fresh = unit(fresh + np.random.default_rng(9).standard_normal(fresh.shape).astype(np.float32) * 0.05)
    exact = Index.build(rows, paths, labels, SHA)
    truth, _ = exact.search(fresh, 10)
    scores, found = index.search(fresh, 10)
    assert ((found >= 0) & (scores >= truth[:, 9:10] - 1e-5)).mean() >= 0.95


def test_uniform_random_vectors_get_poor_measured_recall() -> None:
    # The documented caveat: no neighbourhood structure -> the measured figure says so (and is stored). (HNSW
    # still finds most neighbours in a gallery this small; benchmarks/bench_search.py shows it at 100k.)
    rows = unit(np.random.default_rng(3).standard_normal((4000, 64)))
    index = Index.build(rows, [f"/g/{i}" for i in range(4000)], ["."] * 4000, SHA, "ivf")
    print(index.recall)
    assert index.recall is not None and index.recall.recall < 0.8


def test_save_load_roundtrip_keeps_rows_params_and_recall(tmp_path: Path) -> None:
    rows, paths, labels = gallery(300)
    for kind in ("flat", "hnsw", "ivf"):
        index = Index.build(rows, paths, labels, SHA, kind, {"nlist": 8} if kind == "ivf" else None)
        target = tmp_path / f"{kind}.index"
        side = index.save(target)
        assert side == sidecar_path(target) == tmp_path / f"{kind}.index.json"
        facts = json.loads(side.read_text())
        assert facts["format"] == "frpt-index/1" and facts["kind"] == kind and facts["count"] == 300
        assert facts["dimension"] == 16 and facts["model_sha256"] == SHA and facts["paths"] == paths
        assert facts["labels"] == labels and len(facts["index_sha256"]) == 64
        assert (facts["recall"] is None) == (kind == "flat")
        loaded = Index.load(target)
        assert (loaded.kind, loaded.params, loaded.paths, loaded.labels) == (kind, index.params, paths, labels)
        assert loaded.recall == index.recall
        np.testing.assert_array_equal(loaded.search(rows[:20], 4)[1], index.search(rows[:20], 4)[1])
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(kind)) == [target.name, side.name]


def _one_line_error(call, match: str) -> None:
    with pytest.raises(FrptError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_load_refuses_truncated_foreign_and_mismatched_files(tmp_path: Path) -> None:
    rows, paths, labels = gallery(50)
    target = tmp_path / "g.index"
    Index.build(rows, paths, labels, SHA).save(target)
    side = sidecar_path(target)
    good_index, good_side = target.read_bytes(), side.read_text()
    facts = json.loads(good_side)

    target.write_bytes(good_index[: len(good_index) // 2])
    _one_line_error(lambda: Index.load(target), "truncated or replaced")
    garbage = b"not a faiss index" * 10
    target.write_bytes(garbage)  # a foreign file whose sidecar was forged to match its hash
    side.write_text(json.dumps({**facts, "index_sha256": hashlib.sha256(garbage).hexdigest()}))
    _one_line_error(lambda: Index.load(target), "FAISS cannot read")
    target.write_bytes(good_index)
    for change, message in [
        ({"dimension": 32}, r"differs in: dimension"),
        ({"format": "something/1"}, "is not an frpt-index/1 sidecar"),
        ({"labels": labels[:-1]}, r"inconsistent fields \(labels\)"),
        ({"count": 49, "paths": paths[:-1], "labels": labels[:-1]}, r"differs in: count"),
        ({"kind": "hnsw", "params": DEFAULT_PARAMS["hnsw"]}, r"differs in: kind"),
        ({"model_sha256": "xyz"}, "64-digit lowercase hex"),
    ]:
        side.write_text(json.dumps({**facts, **change}))
        _one_line_error(lambda: Index.load(target), message)
    side.write_text("{not json")
    _one_line_error(lambda: Index.load(target), "cannot read")
    side.unlink()
    _one_line_error(lambda: Index.load(target), "no sidecar")
    _one_line_error(lambda: Index.load(tmp_path / "absent.index"), "index not found")


def test_add_same_model_only_and_ivf_keeps_its_cells() -> None:
    rows, paths, labels = gallery(400)
    more, more_paths, more_labels = gallery(60, seed=1)
    index = Index.build(rows, paths, labels, SHA, "ivf", {"nlist": 10, "nprobe": 10})
    first_recall = index.recall
    index.add(more, more_paths, more_labels, SHA)
    assert index.count == 460 and index.paths[-60:] == more_paths and index.labels[-1] == more_labels[-1]
    assert index.params["nlist"] == 10 and index.recall is not None and index.recall != first_recall
    scores, hits = index.search(more[:3], 1)
    assert hits[:, 0].tolist() == [400, 401, 402] and np.all(scores >= 0.9999)
    _one_line_error(lambda: index.add(more, more_paths, more_labels, OTHER_SHA), "come from model sha256 bbbbbbbbbbbb")
    narrow = unit(np.ones((2, 8)))
    _one_line_error(lambda: index.add(narrow, ["/x", "/y"], [".", "."], SHA), "D=8 but the index has D=16")
    _one_line_error(lambda: index.add(more, more_paths[:-1], more_labels, SHA), "60 rows but 59 paths")


def test_bad_build_parameters_and_queries_are_one_line_errors() -> None:
    rows, paths, labels = gallery(30)
    for call, message in [
        (lambda: Index.build(rows, paths, labels, SHA, "lsh"), "unknown index kind 'lsh'"),
        (lambda: Index.build(rows, paths, labels, SHA, "hnsw", {"nprobe": 4}), "unknown parameter nprobe"),
        (lambda: Index.build(rows, paths, labels, SHA, "ivf", {"nlist": 31}), "nlist=31 exceeds the 30 rows"),
        (lambda: Index.build(rows, paths, labels, SHA, "hnsw", {"M": 0}), "M must be an integer >= 1"),
        (lambda: Index.build(rows[:0], [], [], SHA), "non-empty"),
        (lambda: Index.build(rows * np.nan, paths, labels, SHA), "NaN"),
        (lambda: Index.build(rows, paths, labels, "abc"), "64-digit"),
    ]:
        _one_line_error(call, message)
    index = Index.build(rows, paths, labels, SHA)
    _one_line_error(lambda: index.search(rows[:, :8], 3), r"queries have shape \[30, 8\] but the index holds D=16")
    _one_line_error(lambda: index.search(rows, 31), "pass -k 1..30")
    _one_line_error(lambda: index.search(rows, 30, exclude_rows=np.arange(30)), "pass -k 1..29")
    assert index.search(rows, 29, exclude_rows=np.arange(30))[1].shape == (30, 29)


def test_default_nlist_and_normalize() -> None:
    assert [default_nlist(n) for n in (1, 38, 39, 400, 10_000, 1_000_000)] == [1, 1, 1, 10, 256, 4000]
    rows = normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert rows.dtype == np.float32 and rows.tolist() == [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]


def test_gpu_faiss_searches_on_all_gpus_except_hnsw(monkeypatch: pytest.MonkeyPatch) -> None:
    moved: list[object] = []

    class OnGpu:  # stands for the GPU copy: searches like the CPU index it came from
        def __init__(self, cpu: object) -> None:
            self.cpu = cpu

        def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
            return self.cpu.search(queries, k)  # type: ignore[attr-defined]

    def to_gpus(cpu: object) -> OnGpu:
        moved.append(cpu)
        return OnGpu(cpu)

    monkeypatch.setattr(faiss, "StandardGpuResources", object, raising=False)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", to_gpus, raising=False)
    rows, paths, labels = gallery(100)
    for kind in ("flat", "ivf", "hnsw"):
        moved.clear()
        index = Index.build(rows, paths, labels, SHA, kind, {"nlist": 2} if kind == "ivf" else None)
        assert index.search(rows[:3], 1)[1][:, 0].tolist() == [0, 1, 2]
        assert index.uses_gpu == (kind != "hnsw") and len(moved) == (kind != "hnsw")


def test_without_faiss_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    rows, paths, labels = gallery(5)
    _one_line_error(lambda: Index.build(rows, paths, labels, SHA), r"pip install 'frpt-toolkit\[search\]'")


def _recall_sets() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Random sets for the reference comparison, several with exact similarity ties."""
    rng = np.random.default_rng(7)
    sets = []
    for trial in range(4):  # generic Gaussian rows: no ties
        count, dim = int(rng.integers(20, 600)), int(rng.choice([3, 16, 64]))
        sets.append((f"gauss{trial}", rng.standard_normal((count, dim)), rng.integers(0, max(2, count // 8), count)))
    # +-1 rows have norm 2 (D=4) or 4 (D=16): the unit rows and every cosine are exact dyadic numbers, so
    # equal cosines are bit-equal on every code path and ties are real (D=4: only 16 distinct rows)
    for dim in (4, 16):
        rows = rng.choice([-1.0, 1.0], (300, dim))
        sets.append((f"pm1_d{dim}", rows, rng.integers(0, 12, 300)))
    dyadic = rng.choice([-1.0, 1.0], (150, 16))
    sets.append(("duplicated", np.concatenate([dyadic, dyadic[::-1], dyadic[:40]]), rng.integers(0, 9, 340)))
    sets.append(("zero_rows", np.concatenate([np.zeros((5, 16)), dyadic[:60]]), rng.integers(0, 4, 65)))
    sets.append(("circle_ties", np.array([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]]), np.array([0, 1, 0])))
    return sets


@pytest.mark.parametrize("name,rows,labels", _recall_sets(), ids=[s[0] for s in _recall_sets()])
def test_recall_through_the_index_equals_recall_at_k(name: str, rows: np.ndarray, labels: np.ndarray) -> None:
    ks = [k for k in (1, 2, 4, 8, 16) if k < len(rows)]
    assert indexed_recall_at_k(rows, labels, ks) == recall_at_k(rows, labels, ks)


def test_recall_through_the_index_validates_like_the_reference() -> None:
    for rows, labels, ks in [
        (np.ones((1, 3)), [0], (1,)),
        (np.ones((3, 3)), [0, 1], (1,)),
        (np.ones((3, 3)), [0, 1, 2], (8,)),
        (np.array([[np.nan, 1.0], [1.0, 0.0]]), [0, 1], (1,)),
    ]:
        with pytest.raises(ValueError) as ours:
            indexed_recall_at_k(rows, labels, ks)
        with pytest.raises(ValueError) as reference:
            recall_at_k(rows, labels, ks)
        assert str(ours.value) == str(reference.value)
    assert 1e-7 < score_error_bound(256) < 1e-4
