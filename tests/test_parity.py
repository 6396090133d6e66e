"""Parity maths: thresholds, statistics, verdicts and the report round-trip (numpy only)."""

import numpy as np
import pytest

from frpt_runtime.errors import FrptError
from frpt_runtime.parity import (
    FP16_MIN_COSINE,
    FP16_MIN_TOP1,
    FP32_MAX_ABS,
    THRESHOLDS,
    ParityReport,
    compare_embeddings,
    top1_agreement,
)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture()
def ref() -> np.ndarray:
    return _unit(np.random.default_rng(0).normal(size=(16, 32)))


def test_identical_passes_both_precisions(ref):
    for precision in ("fp32", "fp16"):
        report = compare_embeddings(ref, ref.copy(), precision)
        assert report and report.max_abs == 0.0 and report.top1_agreement == 1.0
        assert report.min_cosine == pytest.approx(1.0)
        assert "PASSED" in report.format()


def test_fp32_fails_on_one_sample_and_names_it(ref):
    cand = ref.copy()
    cand[5, 3] += 3 * FP32_MAX_ABS
    report = compare_embeddings(ref, cand, "fp32")
    assert not report
    assert report.worst_index == 5
    assert report.worst_abs == pytest.approx(3 * FP32_MAX_ABS, rel=1e-3)
    assert "sample 5" in report.failure() and "FAILED" in report.format()
    small = ref.copy()
    small[5, 3] += 0.5 * FP32_MAX_ABS
    assert compare_embeddings(ref, small, "fp32")


def test_thresholds_are_the_documented_figures():
    """docs/design.md §5 and README: fp32 max |Δ| <= 1e-4; fp16 min cosine >= 0.999 and top-1 agreement >= 99 %."""
    assert THRESHOLDS == {"fp32_max_abs": 1e-4, "fp16_min_cosine": 0.999, "fp16_min_top1": 0.99}
    assert (FP32_MAX_ABS, FP16_MIN_COSINE, FP16_MIN_TOP1) == (1e-4, 0.999, 0.99)


def _turned(ref: np.ndarray, row: int, cosine: float) -> np.ndarray:
    """``ref`` (float64) with one row turned to exactly ``cosine`` with its original, still of unit length."""
    out = ref.astype(np.float64)
    r = out[row] / np.linalg.norm(out[row])
    other = np.random.default_rng(1).normal(size=r.shape)
    other -= other @ r * r
    other /= np.linalg.norm(other)
    out[row] = cosine * r + np.sqrt(1.0 - cosine**2) * other
    return out


@pytest.mark.parametrize(("cosine", "passes"), [(0.9985, False), (0.9989, False), (0.9991, True), (0.9995, True)])
def test_fp16_cosine_bound_just_inside_and_outside(ref, cosine, passes):
    cand = _turned(ref, 9, cosine)
    report = compare_embeddings(ref.astype(np.float64), cand, "fp16")
    assert report.min_cosine == pytest.approx(cosine, abs=1e-12) and report.worst_index == 9
    assert report.top1_agreement == 1.0  # the cosine alone decides
    assert bool(report) is passes and report.passed is passes
    if not passes:
        assert report.failure() == f"sample 9: cosine {cosine:.6f} < 0.999"
        assert "FAIL" in report.format().splitlines()[5]  # the min cosine row
    else:
        assert report.failure() is None and report.format().endswith("PASSED")
    # fp32 judges the same pair by |Δ| (a turn of this size moves elements by ~1e-2) and fails it
    assert not compare_embeddings(ref.astype(np.float64), cand, "fp32")


@pytest.mark.parametrize(("delta", "passes"), [(1.01e-4, False), (0.99e-4, True), (1e-4, True)])
def test_fp32_max_abs_bound_just_inside_and_outside(ref, delta, passes):
    base = ref.astype(np.float64)
    base[5, 3] = 0.0  # so the difference is exactly ``delta``: the bound itself passes (<=)
    cand = base.copy()
    cand[5, 3] = delta
    report = compare_embeddings(base, cand, "fp32")
    assert report.max_abs == delta and report.worst_index == 5
    assert bool(report) is passes
    # fp16 ignores |Δ|: a change this small keeps every cosine above 0.999 and every neighbour
    assert compare_embeddings(base, cand, "fp16")


def _triplets(count: int, dim: int = 64, seed: int = 0) -> tuple[np.ndarray, np.random.Generator]:
    """``[3*count, dim]`` unit rows: triplets (a, b, c) at angles 0, +0.030 and -0.032 rad in random planes (a's
    neighbour is b), and the generator for further draws."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        u, v = np.linalg.qr(rng.normal(size=(dim, 2)))[0].T
        rows += [np.cos(t) * u + np.sin(t) * v for t in (0.0, 0.030, -0.032)]
    return np.array(rows), rng


@pytest.mark.parametrize(("moved", "passes"), [(11, False), (9, True), (10, True)])
def test_fp16_top1_bound_just_inside_and_outside(moved, passes):
    """1000 samples (333 triplets + 1): turning ``a`` by -0.005 rad makes ``c`` its neighbour (cosine 0.99999)."""
    triplets, rng = _triplets(333)
    ref = np.concatenate([triplets, rng.normal(size=(1, 64))])
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    cand = ref.copy()
    for k in range(moved):
        a, b = ref[3 * k], ref[3 * k + 1]
        v = b - (b @ a) * a
        v /= np.linalg.norm(v)
        cand[3 * k] = np.cos(-0.005) * a + np.sin(-0.005) * v
    report = compare_embeddings(ref, cand, "fp16")
    assert report.num_samples == 1000 and report.min_cosine > 0.9999
    assert report.top1_agreement == pytest.approx((1000 - moved) / 1000)
    assert bool(report) is passes
    if not passes:
        assert report.failure() == "top-1 agreement 98.90% < 99%"


def test_statistics_match_numpy(ref):
    cand = _unit(ref + 1e-3 * np.random.default_rng(2).normal(size=ref.shape))
    report = compare_embeddings(ref, cand, "fp16")
    diff = np.abs(cand.astype(np.float64) - ref)
    assert report.max_abs == pytest.approx(diff.max())
    assert report.median_abs == pytest.approx(np.median(diff))
    assert report.p99_abs == pytest.approx(np.percentile(diff, 99))
    cos = np.sum(cand.astype(np.float64) * ref, 1) / np.linalg.norm(cand, axis=1) / np.linalg.norm(ref, axis=1)
    assert report.min_cosine == pytest.approx(cos.min()) and report.mean_cosine == pytest.approx(cos.mean())


def test_top1_agreement_counts_swapped_neighbours():
    # 0/1 are mutual neighbours, 2/3 too; a candidate pairing 0 with 2 breaks samples 0 and 2's agreement
    ref = _unit(np.array([[1, 0.1, 0], [1, 0, 0.1], [0, 1, 0.1], [0, 1, 0]], dtype=np.float64))
    assert top1_agreement(ref, ref) == 1.0
    cand = ref.copy()
    cand[0] = _unit(np.array([[0.1, 1, 0.05]]))[0]
    assert top1_agreement(ref, cand) == pytest.approx(0.75)  # only sample 0 now picks 2
    assert top1_agreement(ref[:1], ref[:1]) is None
    # duplicates: either twin is a correct neighbour, whichever one argmax happens to pick
    dup = np.concatenate([ref, ref[:1]])
    assert top1_agreement(dup, dup[[4, 1, 2, 3, 0]]) == 1.0


def _angles(*theta: float) -> np.ndarray:
    return np.array([[np.cos(t), np.sin(t)] for t in theta], dtype=np.float64)


def test_fp16_fails_on_top1_alone():
    # a's neighbour is b (0.030 rad) not c (0.032 rad); a candidate a' turned by 0.005 rad keeps
    # cosine 0.99999 but now lies nearer c: top-1 agreement 2/3 fails while every cosine passes.
    ref = _angles(0.0, 0.030, -0.032)
    cand = _angles(-0.005, 0.030, -0.032)
    report = compare_embeddings(ref, cand, "fp16")
    assert report.min_cosine >= FP16_MIN_COSINE
    assert report.top1_agreement == pytest.approx(2 / 3)
    assert not report and "top-1" in report.failure() and "cosine" not in report.failure()
    assert compare_embeddings(ref, _angles(0.002, 0.030, -0.032), "fp16")


def test_nan_and_inf_fail(ref):
    cand = ref.copy()
    cand[2, 0] = np.nan
    cand[4, 1] = np.inf
    for precision in ("fp32", "fp16"):
        report = compare_embeddings(ref, cand, precision)
        assert not report and report.nan_count == 1 and report.inf_count == 1 and report.worst_index == 2
        assert "NaN" in report.failure()


def test_bad_inputs_raise_frpt_error(ref):
    with pytest.raises(FrptError, match="precision"):
        compare_embeddings(ref, ref, "int8")
    with pytest.raises(FrptError, match="equal shape"):
        compare_embeddings(ref, ref[:, :5], "fp32")
    bad = ref.copy()
    bad[0, 0] = np.nan
    with pytest.raises(FrptError, match="reference"):
        compare_embeddings(bad, ref, "fp32")


def test_report_round_trips_json(ref):
    import json

    report = compare_embeddings(ref, _unit(ref + 1e-4), "fp16")
    again = ParityReport.from_dict(json.loads(report.to_json()))
    assert again == report and bool(again) == bool(report)
    with pytest.raises(FrptError):
        ParityReport.from_dict({"precision": "fp32"})
