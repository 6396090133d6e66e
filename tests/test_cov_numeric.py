"""Recall@K and parity statistics pinned value by value (issue 15: mutation survivors of metrics.py, parity.py).

Every figure is computed by hand here (or by a few lines of plain numpy beside the call), so an off-by-one in a
range check, a swapped comparison or a dropped field changes a value these tests name.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from runtime_toys import write_embed_output

from frpt_runtime.errors import FrptError
from frpt_runtime.metrics import DEFAULT_KS, format_recall, recall_at_k, recall_from_embeddings
from frpt_runtime.parity import (
    FP16_MIN_COSINE,
    FP16_MIN_TOP1,
    FP32_MAX_ABS,
    THRESHOLDS,
    ParityReport,
    compare_embeddings,
    top1_agreement,
)

# --- Recall@K -----------------------------------------------------------------------------------------------


def _ring(count: int) -> np.ndarray:
    angles = np.linspace(0.0, 2 * np.pi, count, endpoint=False)
    return np.stack((np.cos(angles), np.sin(angles)), axis=1)


def test_default_ks_are_the_papers_1_2_4_8():
    emb = _ring(10)
    labels = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert DEFAULT_KS == (1, 2, 4, 8)
    assert list(recall_at_k(emb, labels)) == ["recall@1", "recall@2", "recall@4", "recall@8"]


def test_recall_counts_a_query_once_its_first_same_class_neighbour_is_within_k():
    # on a circle (degrees; row norms vary, cosine ignores them), neighbours by angle:
    # q0 -> 10 hit; q1 -> 0 hit; q2 (30) -> 10, 0, 100: rank 3; q3 (100) -> 125, 30: rank 2;
    # q4 (125) -> 100, 200: rank 2; q5 (200) -> 125 hit.
    rad = np.deg2rad([0, 10, 30, 100, 125, 200])
    emb = np.stack((np.cos(rad), np.sin(rad)), axis=1) * np.array([[1.0], [2.0], [0.5], [3.0], [1.0], [7.0]])
    labels = [0, 0, 1, 1, 2, 2]
    assert recall_at_k(emb, labels, ks=(1, 2, 3)) == {"recall@1": 3 / 6, "recall@2": 5 / 6, "recall@3": 1.0}


@pytest.mark.parametrize(
    ("embeddings", "labels", "message"),
    [
        (np.zeros((3, 2)), [0, 1], r"need embeddings \[M, D\] and labels \[M\], got \(3, 2\) and \(2,\)"),
        (np.zeros(3), [0, 1, 2], r"got \(3,\) and \(3,\)"),
        (np.zeros((3, 2)), [[0, 1, 2]], r"got \(3, 2\) and \(1, 3\)"),
        (np.ones((1, 2)), [0], "at least two samples"),
        (np.ones((0, 2)), [], "at least two samples"),
    ],
    ids=["labels-short", "embeddings-1d", "labels-2d", "one-sample", "no-sample"],
)
def test_recall_refuses_bad_shapes(embeddings, labels, message):
    with pytest.raises(ValueError, match=message):
        recall_at_k(embeddings, np.array(labels), ks=(1,))


def test_recall_with_two_samples_is_allowed_and_k_is_bounded_by_m_minus_1():
    assert recall_at_k(np.eye(2), [0, 0], ks=(1,)) == {"recall@1": 1.0}
    assert recall_at_k(np.eye(2), [0, 1], ks=(1,)) == {"recall@1": 0.0}
    with pytest.raises(ValueError, match=r"K must be in 1..1, got \[2\]"):
        recall_at_k(np.eye(2), [0, 0], ks=(2,))
    emb = _ring(5)
    assert recall_at_k(emb, [0, 0, 0, 0, 1], ks=(4,))["recall@4"] == pytest.approx(4 / 5)
    with pytest.raises(ValueError, match=r"K must be in 1..4, got \[1, 5\]"):
        recall_at_k(emb, [0, 0, 0, 0, 1], ks=(1, 5))
    with pytest.raises(ValueError, match=r"K must be in 1..4, got \[0\]"):
        recall_at_k(emb, [0, 0, 0, 0, 1], ks=(0,))
    with pytest.raises(ValueError, match=r"K must be in 1..4, got \[0, 2\]"):
        recall_at_k(emb, [0, 0, 0, 0, 1], ks=(0, 2))


def test_recall_refuses_non_finite_embeddings():
    emb = _ring(4)
    emb[2, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        recall_at_k(emb, [0, 0, 1, 1], ks=(1,))


def test_zero_rows_do_not_divide_by_zero():
    emb = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    result = recall_at_k(emb, [1, 0, 0], ks=(1,))
    assert result == {"recall@1": pytest.approx(2 / 3)}  # rows 1, 2 find each other; the zero row finds row 1


def test_recall_from_embeddings_labels_by_folder_and_drops_k_not_below_the_count(tmp_path):
    pytest.importorskip("faiss", reason="frpt_runtime.search needs faiss-cpu (the [search] extra)")
    rad = np.deg2rad([0, 10, 100, 110])
    rows = np.stack((np.cos(rad), np.sin(rad)), axis=1)
    write_embed_output(tmp_path, ["a/0.jpg", "a/1.jpg", "b/0.jpg", "b/1.jpg"], rows)
    result = recall_from_embeddings(tmp_path, ks=(1, 2, 3, 4))
    assert result == {"recall@1": 1.0, "recall@2": 1.0, "recall@3": 1.0, "images": 4, "classes": 2}
    two = tmp_path / "two"
    write_embed_output(two, ["a/0.jpg", "b/0.jpg"], rows[:2])
    assert recall_from_embeddings(two, ks=(1, 2)) == {"recall@1": 0.0, "images": 2, "classes": 2}


def test_recall_from_embeddings_needs_two_images_in_two_folders(tmp_path):
    pytest.importorskip("faiss", reason="frpt_runtime.search needs faiss-cpu (the [search] extra)")
    one = tmp_path / "one"
    write_embed_output(one, ["a/0.jpg"], np.ones((1, 2)))
    with pytest.raises(FrptError, match=r"holds 1 embedded images: Recall@K needs at least two"):
        recall_from_embeddings(one)
    flat = tmp_path / "flat"
    write_embed_output(flat, ["x/0.jpg", "x/1.jpg", "x/2.jpg"], np.eye(3))
    with pytest.raises(FrptError, match=r"all 3 images in .* come from one folder \('x'\): Recall@K needs classes"):
        recall_from_embeddings(flat)


def test_format_recall_in_percent():
    assert format_recall({"recall@1": 0.5, "recall@16": 0.123}) == "R@1  50.0  R@16  12.3"


# --- parity -------------------------------------------------------------------------------------------------


def _reference(count: int = 6, dim: int = 4, seed: int = 0) -> np.ndarray:
    ref = np.random.default_rng(seed).standard_normal((count, dim))
    return ref / np.linalg.norm(ref, axis=1, keepdims=True)


def _rotated(ref: np.ndarray, row: int, cosine: float) -> np.ndarray:
    """``ref`` with row ``row`` turned (within its plane with another unit vector) to the given cosine."""
    out = ref.copy()
    other = np.zeros(ref.shape[1])
    other[np.argmin(np.abs(ref[row]))] = 1.0
    other -= other @ ref[row] * ref[row]
    other /= np.linalg.norm(other)
    out[row] = cosine * ref[row] + np.sqrt(1 - cosine**2) * other
    return out


def test_thresholds_are_the_documented_figures():
    assert (FP32_MAX_ABS, FP16_MIN_COSINE, FP16_MIN_TOP1) == (1e-4, 0.999, 0.99)
    assert THRESHOLDS == {"fp32_max_abs": 1e-4, "fp16_min_cosine": 0.999, "fp16_min_top1": 0.99}


def test_fp32_statistics_are_exact_and_the_worst_sample_is_named():
    ref = _reference()
    cand = ref.copy()
    cand[3, 1] += 3e-4
    cand[1, 0] -= 5e-5
    report = compare_embeddings(ref, cand, "fp32")
    diff = np.abs(cand - ref)
    assert not report and report.precision == "fp32"
    assert (report.num_samples, report.dim, report.worst_index) == (6, 4, 3)
    assert report.max_abs == pytest.approx(3e-4) and report.worst_abs == pytest.approx(3e-4)
    assert report.median_abs == pytest.approx(np.median(diff)) and report.p99_abs == pytest.approx(
        np.percentile(diff, 99)
    )
    cos = np.sum(ref * cand, 1) / np.linalg.norm(cand, axis=1)
    assert report.min_cosine == pytest.approx(cos.min()) and report.mean_cosine == pytest.approx(cos.mean())
    assert report.worst_cosine == pytest.approx(cos[3])
    assert (report.nan_count, report.inf_count, report.top1_agreement) == (0, 0, 1.0)
    assert report.failure() == "sample 3: max |Δ| 3.000e-04 > 1e-04"
    assert report.thresholds == THRESHOLDS


def test_fp32_bound_is_inclusive():
    ref = _reference()
    just_inside, just_outside = ref.copy(), ref.copy()
    just_inside[2, 2] += 0.99e-4
    just_outside[2, 2] += 1.01e-4
    assert compare_embeddings(ref, just_inside, "fp32").passed
    assert not compare_embeddings(ref, just_outside, "fp32").passed
    assert compare_embeddings(ref, ref, "fp32").failure() is None


@pytest.mark.parametrize(("cosine", "passed"), [(0.9985, False), (0.9995, True)])
def test_fp16_min_cosine_bound(cosine, passed):
    ref = _reference(count=8, dim=16)
    report = compare_embeddings(ref, _rotated(ref, 5, cosine), "fp16")
    assert report.passed is passed and report.worst_index == 5
    assert report.min_cosine == pytest.approx(cosine) and report.worst_cosine == pytest.approx(cosine)
    if not passed:
        assert report.failure() == "sample 5: cosine 0.998500 < 0.999"


def test_fp16_top1_agreement_bound_and_message():
    # 100 samples in 50 near-duplicate pairs; swapping one pair's partner changes two nearest neighbours (98 %),
    # keeping cosines high; with 1000 samples one changed neighbour pair is 99.8 %.
    base = np.random.default_rng(1).standard_normal((50, 64))
    ref = np.repeat(base, 2, axis=0) + 1e-3 * np.random.default_rng(2).standard_normal((100, 64))
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    cand = ref.copy()
    cand[[0, 1, 2, 3]] = ref[[0, 2, 1, 3]] * 0 + ref[[0, 1, 2, 3]]  # unchanged rows (baseline check below)
    assert top1_agreement(ref, cand) == 1.0
    cand[1], cand[2] = ref[2] * 0.99999 + ref[1] * 1e-5, ref[1] * 0.99999 + ref[2] * 1e-5
    agreement = top1_agreement(ref, cand)
    report = compare_embeddings(ref, cand, "fp16")
    assert report.top1_agreement == agreement and agreement < FP16_MIN_TOP1
    assert not report.passed and f"top-1 agreement {agreement:.2%} < 99%" in report.failure()


def test_top1_of_one_sample_is_none_and_ties_agree():
    ref = _reference(count=1)
    assert top1_agreement(ref, ref) is None
    report = compare_embeddings(ref, ref, "fp16")
    assert report.passed and report.top1_agreement is None and "n/a (M<2)" in report.format()
    twins = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    swapped = twins[[1, 0, 2]]
    assert top1_agreement(twins, swapped) == 1.0


def test_non_finite_candidate_fails_naming_the_first_bad_row():
    ref = _reference()
    cand = ref.copy()
    cand[4, 0] = np.nan
    cand[2, 1] = np.inf
    cand[2, 3] = -np.inf
    report = compare_embeddings(ref, cand, "fp16")
    assert (report.nan_count, report.inf_count, report.worst_index) == (1, 2, 2)
    assert report.max_abs == np.inf and report.top1_agreement == 0.0 and report.worst_cosine == -1.0
    assert report.failure() == "candidate has 1 NaN and 2 Inf values (first bad sample 2)"
    assert not compare_embeddings(ref, cand, "fp32").passed


@pytest.mark.parametrize(
    ("ref", "cand", "precision", "message"),
    [
        (np.ones((2, 3)), np.ones((2, 3)), "int8", "precision must be one of"),
        (np.ones((2, 3)), np.ones((2, 4)), "fp32", r"equal shape, got \(2, 3\) and \(2, 4\)"),
        (np.ones((0, 3)), np.ones((0, 3)), "fp32", "two non-empty"),
        (np.ones(3), np.ones(3), "fp32", r"got \(3,\) and \(3,\)"),
        (np.full((2, 3), np.nan), np.ones((2, 3)), "fp32", "reference embeddings contain NaN/Inf"),
    ],
    ids=["precision", "shape", "empty", "rank", "reference-nan"],
)
def test_compare_refuses_bad_inputs(ref, cand, precision, message):
    with pytest.raises(FrptError, match=message):
        compare_embeddings(ref, cand, precision)


def test_report_format_and_json_round_trip():
    ref = _reference()
    report = compare_embeddings(ref, _rotated(ref, 0, 0.99), "fp16")
    text = report.format()
    lines = text.splitlines()
    assert lines[0] == "parity (fp16, 6 samples, D=4)"
    assert any(line.split()[:2] == ["min", "cosine"] and line.rstrip().endswith("FAIL") for line in lines)
    assert any(line.startswith("  max |Δ|") and "<=" not in line for line in lines)  # fp32-only threshold
    assert lines[-1] == f"FAILED: {report.failure()}"
    assert ParityReport.from_dict(json.loads(report.to_json())) == report
    passed = compare_embeddings(ref, ref, "fp32")
    assert passed.format().splitlines()[-1] == "PASSED"
    assert "<= 1e-04" in passed.format() and ">= 0.999" not in passed.format()
    with pytest.raises(FrptError, match=r"missing fields \['dim', 'passed'\]"):
        ParityReport.from_dict({k: v for k, v in report.to_dict().items() if k not in ("dim", "passed")})


@pytest.mark.parametrize(("gap", "agrees"), [(0.6e-6, True), (1.6e-6, False)])
def test_top1_counts_a_neighbour_within_1e6_of_the_best_as_a_tie(gap, agrees):
    # query 0's reference neighbours: row 1 at cosine c, row 2 at c - gap; the candidate prefers row 2
    c = 0.5

    def at(cosine: float) -> list[float]:
        return [cosine, float(np.sqrt(1 - cosine**2)), 0.0]

    ref = np.array([[1.0, 0.0, 0.0], at(c), at(c - gap)])
    ref[2, 1:] = [ref[2, 1] * 0.8, ref[2, 1] * 0.6]  # same cosine to row 0, further from row 1
    cand = ref.copy()
    cand[2, 0] += 1e-3  # row 2 now nearest to row 0 for the candidate
    cand[2] /= np.linalg.norm(cand[2])
    sims = ref @ ref.T
    assert sims[0, 1] - sims[0, 2] == pytest.approx(gap, rel=1e-3)
    assert int(np.argmax((cand @ cand.T)[0, 1:])) + 1 == 2
    agreement = top1_agreement(ref, cand)
    assert (agreement == 1.0) is agrees


def _report(**changes) -> ParityReport:
    fields = dict(
        precision="fp16",
        num_samples=10,
        dim=4,
        max_abs=0.01,
        median_abs=0.001,
        p99_abs=0.005,
        min_cosine=0.9995,
        mean_cosine=0.9999,
        worst_index=7,
        worst_abs=0.01,
        worst_cosine=0.9995,
        nan_count=0,
        inf_count=0,
        top1_agreement=1.0,
        thresholds=dict(THRESHOLDS),
        passed=False,
    )
    fields.update(changes)
    return ParityReport(**fields)


def test_failure_names_only_the_bounds_that_are_missed():
    assert _report(top1_agreement=0.5).failure() == "top-1 agreement 50.00% < 99%"
    assert _report(min_cosine=0.999, worst_cosine=0.999, top1_agreement=0.5).failure() == (
        "top-1 agreement 50.00% < 99%"  # a cosine exactly at the bound passes it
    )
    assert _report(min_cosine=0.99, worst_cosine=0.99, top1_agreement=0.99).failure() == (
        "sample 7: cosine 0.990000 < 0.999"  # top-1 exactly at the bound passes it
    )
    assert _report(min_cosine=0.99, worst_cosine=0.99, top1_agreement=None).failure() == (
        "sample 7: cosine 0.990000 < 0.999"
    )
    assert _report(inf_count=1).failure() == "candidate has 0 NaN and 1 Inf values (first bad sample 7)"
    assert _report(nan_count=2).failure() == "candidate has 2 NaN and 0 Inf values (first bad sample 7)"
    assert _report(passed=True, top1_agreement=0.1).failure() is None


def test_format_marks_each_checked_row():
    text = _report(top1_agreement=0.5).format()
    rows = {line[2:18].strip(): line for line in text.splitlines()[2:-1]}
    assert rows["min cosine"].split()[-1] == "ok" and rows["top-1 agreement"].split()[-1] == "FAIL"
    assert rows["top-1 agreement"].split()[2] == "50.00%" and ">= 99%" in rows["top-1 agreement"]
    assert rows["NaN / Inf"].split()[-1] == "ok" and "0 / 0" in rows["NaN / Inf"]
    assert rows["max |Δ|"].rstrip().endswith("1.000e-02")  # no threshold, no verdict under fp16
    assert rows["median |Δ|"].split()[-1] == "1.000e-03" and rows["p99 |Δ|"].split()[-1] == "5.000e-03"
    assert rows["mean cosine"].split()[-1] == "0.999900"
    fp32 = _report(precision="fp32", max_abs=2e-4, inf_count=3).format()
    fp32_rows = {line[2:18].strip(): line for line in fp32.splitlines()[2:-1]}
    assert fp32_rows["max |Δ|"].split()[-2:] == ["1e-04", "FAIL"]
    assert fp32_rows["min cosine"].rstrip().endswith("0.999500") and fp32_rows["NaN / Inf"].split()[-1] == "FAIL"
    assert _report(precision="fp32", max_abs=1e-4).format().count("FAIL") == 1  # the verdict line only


def test_a_report_cannot_be_changed_after_the_verdict():
    import dataclasses

    report = compare_embeddings(_reference(), _reference(), "fp32")
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.passed = False  # type: ignore[misc]


def test_cosine_of_unnormalised_candidates_divides_by_both_norms():
    ref = _reference()
    cand = ref * np.array([[2.0], [0.5], [3.0], [1.0], [1.0], [10.0]])
    cand[0, 0] += 0.1
    report = compare_embeddings(ref, cand, "fp16")
    expected = np.sum(ref * cand, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1))
    assert report.min_cosine == pytest.approx(expected.min(), rel=1e-12)
    assert report.mean_cosine == pytest.approx(expected.mean(), rel=1e-12) and report.worst_index == 0


def test_format_counts_figures_at_the_bound_as_ok():
    rows = _report(min_cosine=0.999, top1_agreement=0.99).format().splitlines()[2:-1]
    marks = {line[2:18].strip(): line.split()[-1] for line in rows}
    assert marks["min cosine"] == "ok" and marks["top-1 agreement"] == "ok"
    both = {line[2:18].strip(): line.split()[-1] for line in _report(nan_count=1, inf_count=1).format().splitlines()}
    assert both["NaN / Inf"] == "FAIL"


def test_verdict_bounds_are_inclusive():
    from frpt_runtime.parity import _verdict

    assert _verdict("fp16", 1.0, 0.999, 0.99, 0) is True
    assert _verdict("fp16", 1.0, 0.999, None, 0) is True
    assert _verdict("fp16", 1.0, 0.9989999, 1.0, 0) is False and _verdict("fp16", 1.0, 1.0, 0.9899, 0) is False
    assert _verdict("fp32", 1e-4, -1.0, 0.0, 0) is True and _verdict("fp32", 1.0001e-4, 1.0, 1.0, 0) is False
    assert _verdict("fp32", 0.0, 1.0, 1.0, 1) is False


def test_top1_ranks_neighbours_by_cosine_not_by_dot_product():
    # reference rows of very different norms: by cosine row 0's nearest is row 1 (10 degrees), by dot product it
    # would be row 2 (30 degrees, norm 3); the unit-normalised candidate agrees only under cosine ranking
    rad = np.deg2rad([0.0, 10.0, 30.0])
    ref = np.stack((np.cos(rad), np.sin(rad)), axis=1) * np.array([[1.0], [1.0], [3.0]])
    cand = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    assert top1_agreement(ref, cand) == 1.0


def test_top1_of_two_samples_is_a_figure():
    ref = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert top1_agreement(ref, ref) == 1.0
