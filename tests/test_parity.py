"""Parity maths: thresholds, statistics, verdicts and the report round-trip (numpy only)."""

import numpy as np
import pytest

from frpt_runtime.errors import FrptError
from frpt_runtime.parity import (
    FP16_MIN_COSINE,
    FP32_MAX_ABS,
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


def test_fp16_cosine_threshold(ref):
    cand = ref.copy()
    cand[9] = _unit(ref[9:10] + 0.08 * np.random.default_rng(1).normal(size=(1, 32)))[0]
    report = compare_embeddings(ref, cand, "fp16")
    assert report.worst_index == 9 and report.min_cosine < FP16_MIN_COSINE
    assert not report and "sample 9" in report.failure() and "cosine" in report.failure()
    # fp32 judges the same pair by |Δ| instead, and also fails
    assert not compare_embeddings(ref, cand, "fp32")


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
