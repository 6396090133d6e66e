"""Parity maths: how close a backend's embeddings are to PyTorch's (numpy only, torch-free).

One module owns the thresholds and the statistics so tests, ``frpt-export parity``, ``frpt-verify`` and
the reports agree to the digit (docs/design.md §5). Statistics follow Polygraphy's comparison output
(max / median / p99 of ``|Δ|``) plus cosine similarity, NaN/Inf counts and top-1 neighbour agreement.

Inputs are ``[M, D]`` float arrays of embeddings for the same ``M`` images, reference (PyTorch fp32)
first; every statistic is computed in float64.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from frpt_runtime.contract import Precision
from frpt_runtime.errors import FrptError

__all__ = [
    "FP16_MIN_COSINE",
    "FP16_MIN_TOP1",
    "FP32_MAX_ABS",
    "PRECISIONS",
    "THRESHOLDS",
    "ParityReport",
    "compare_embeddings",
    "top1_agreement",
]

FP32_MAX_ABS = 1e-4
FP16_MIN_COSINE = 0.999
FP16_MIN_TOP1 = 0.99
PRECISIONS = tuple(p.value for p in Precision)
THRESHOLDS: dict[str, float] = {
    "fp32_max_abs": FP32_MAX_ABS,
    "fp16_min_cosine": FP16_MIN_COSINE,
    "fp16_min_top1": FP16_MIN_TOP1,
}
_TIE_TOL = 1e-6  # reference similarities this close count as the same neighbour (duplicate images)


@dataclass(frozen=True)
class ParityReport:
    """Candidate-vs-reference embedding statistics and the verdict under the shared thresholds.

    Attributes:
        precision: ``fp32`` (checked on max |Δ|) or ``fp16`` (checked on min cosine and top-1 agreement).
        num_samples, dim: ``M`` and ``D``.
        max_abs, median_abs, p99_abs: over all ``M*D`` elements of ``|candidate - reference|``
            (``inf`` where the candidate is not finite).
        min_cosine, mean_cosine: per-sample cosine similarity (non-finite rows count as ``-1``).
        worst_index: the sample deciding the verdict (largest |Δ| for fp32, lowest cosine for fp16).
        worst_abs, worst_cosine: that sample's max |Δ| and cosine.
        nan_count, inf_count: non-finite elements in the candidate.
        top1_agreement: fraction of samples whose nearest neighbour (cosine, excluding itself) is the
            same by reference and by candidate; ``None`` when ``M < 2``.
        thresholds: the figures applied (see :data:`THRESHOLDS`).
        passed: the verdict.
    """

    precision: str
    num_samples: int
    dim: int
    max_abs: float
    median_abs: float
    p99_abs: float
    min_cosine: float
    mean_cosine: float
    worst_index: int
    worst_abs: float
    worst_cosine: float
    nan_count: int
    inf_count: int
    top1_agreement: float | None
    thresholds: dict[str, float]
    passed: bool

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParityReport:
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names - set(data))
        if missing:
            raise FrptError(f"parity report is missing fields {missing}: written by another toolkit version?")
        return cls(**{k: data[k] for k in names})

    def failure(self) -> str | None:
        """One line naming the worst sample and by how much it misses, or ``None`` when passed."""
        if self.passed:
            return None
        if self.nan_count or self.inf_count:
            return (
                f"candidate has {self.nan_count} NaN and {self.inf_count} Inf values "
                f"(first bad sample {self.worst_index})"
            )
        if self.precision == Precision.fp32:
            return f"sample {self.worst_index}: max |Δ| {self.worst_abs:.3e} > {self.thresholds['fp32_max_abs']:.0e}"
        parts = []
        if self.min_cosine < self.thresholds["fp16_min_cosine"]:
            parts.append(
                f"sample {self.worst_index}: cosine {self.worst_cosine:.6f} < {self.thresholds['fp16_min_cosine']}"
            )
        if self.top1_agreement is not None and self.top1_agreement < self.thresholds["fp16_min_top1"]:
            parts.append(f"top-1 agreement {self.top1_agreement:.2%} < {self.thresholds['fp16_min_top1']:.0%}")
        return "; ".join(parts)

    def format(self) -> str:
        """Human table, each checked threshold beside its figure, then the verdict line."""
        t = self.thresholds
        fp32, fp16 = self.precision == Precision.fp32, self.precision == Precision.fp16

        def check(ok: bool) -> str:
            return "ok" if ok else "FAIL"

        top1 = "n/a (M<2)" if self.top1_agreement is None else f"{self.top1_agreement:.2%}"
        top1_ok = self.top1_agreement is None or self.top1_agreement >= t["fp16_min_top1"]
        rows = [
            (
                "max |Δ|",
                f"{self.max_abs:.3e}",
                f"<= {t['fp32_max_abs']:.0e}" if fp32 else "",
                check(self.max_abs <= t["fp32_max_abs"]) if fp32 else "",
            ),
            ("median |Δ|", f"{self.median_abs:.3e}", "", ""),
            ("p99 |Δ|", f"{self.p99_abs:.3e}", "", ""),
            (
                "min cosine",
                f"{self.min_cosine:.6f}",
                f">= {t['fp16_min_cosine']}" if fp16 else "",
                check(self.min_cosine >= t["fp16_min_cosine"]) if fp16 else "",
            ),
            ("mean cosine", f"{self.mean_cosine:.6f}", "", ""),
            ("top-1 agreement", top1, f">= {t['fp16_min_top1']:.0%}" if fp16 else "", check(top1_ok) if fp16 else ""),
            ("NaN / Inf", f"{self.nan_count} / {self.inf_count}", "0 / 0", check(self.nan_count + self.inf_count == 0)),
        ]
        lines = [f"parity ({self.precision}, {self.num_samples} samples, D={self.dim})"]
        lines.append(f"  {'statistic':<16} {'value':>12}  {'threshold':<10} ok")
        lines += [f"  {name:<16} {value:>12}  {thr:<10} {ok}".rstrip() for name, value, thr, ok in rows]
        lines.append("PASSED" if self.passed else f"FAILED: {self.failure()}")
        return "\n".join(lines)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    num = np.sum(a * b, axis=1)
    den = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-300)
    return num / den


def _nearest(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity matrix with the diagonal masked out, and each row's arg-max."""
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-300)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    return sim, np.argmax(sim, axis=1)


def top1_agreement(reference: np.ndarray, candidate: np.ndarray) -> float | None:
    """Fraction of samples whose nearest neighbour in the set is the same by reference and candidate.

    A candidate neighbour that ties the reference's best (duplicate images) counts as agreeing.

    Args:
        reference, candidate: ``[M, D]`` finite embeddings.

    Returns:
        Agreement in ``[0, 1]``, or ``None`` when ``M < 2`` (no neighbours).
    """
    if reference.shape[0] < 2:
        return None
    ref_sim, ref_nn = _nearest(np.asarray(reference, np.float64))
    _, cand_nn = _nearest(np.asarray(candidate, np.float64))
    rows = np.arange(reference.shape[0])
    agree = ref_sim[rows, cand_nn] >= ref_sim[rows, ref_nn] - _TIE_TOL
    return float(np.mean(agree))


def _check_inputs(reference: np.ndarray, candidate: np.ndarray, precision: str) -> tuple[np.ndarray, np.ndarray]:
    if precision not in PRECISIONS:
        raise FrptError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.ndim != 2 or ref.shape != cand.shape or ref.shape[0] == 0:
        raise FrptError(
            f"embeddings must be two non-empty [M, D] arrays of equal shape, got {ref.shape} and {cand.shape}"
        )
    if not np.all(np.isfinite(ref)):
        raise FrptError("reference embeddings contain NaN/Inf: regenerate the reference bundle")
    return ref, cand


def _verdict(precision: str, max_abs: float, min_cos: float, top1: float | None, non_finite: int) -> bool:
    """The shared thresholds of docs/design.md §5 applied to the statistics."""
    if non_finite:
        return False
    if precision == Precision.fp32:
        return max_abs <= FP32_MAX_ABS
    return min_cos >= FP16_MIN_COSINE and (top1 is None or top1 >= FP16_MIN_TOP1)


def compare_embeddings(reference: np.ndarray, candidate: np.ndarray, precision: str) -> ParityReport:
    """Compare a backend's embeddings with the reference under the shared thresholds.

    Args:
        reference: ``[M, D]`` float reference embeddings (PyTorch fp32), finite.
        candidate: ``[M, D]`` float embeddings from the backend under test.
        precision: ``fp32`` or ``fp16`` (which thresholds decide).

    Returns:
        The :class:`ParityReport`.

    Raises:
        FrptError: unknown precision, mismatched or empty shapes, or a non-finite reference.
    """
    ref, cand = _check_inputs(reference, candidate, precision)
    finite = np.isfinite(cand)
    nan_count, inf_count = int(np.isnan(cand).sum()), int(np.isinf(cand).sum())
    diff = np.where(finite, np.abs(cand - ref), np.inf)
    per_sample_abs = diff.max(axis=1)
    row_ok = finite.all(axis=1)
    cos = np.where(row_ok, _cosines(ref, np.where(finite, cand, 0.0)), -1.0)
    if not row_ok.all():
        worst = int(np.argmin(row_ok))
    else:
        worst = int(np.argmax(per_sample_abs)) if precision == Precision.fp32 else int(np.argmin(cos))
    top1 = top1_agreement(ref, cand) if row_ok.all() else 0.0
    max_abs, min_cos = float(diff.max()), float(cos.min())
    return ParityReport(
        precision=str(precision),
        num_samples=int(ref.shape[0]),
        dim=int(ref.shape[1]),
        max_abs=max_abs,
        median_abs=float(np.median(diff)),
        p99_abs=float(np.percentile(diff, 99)),
        min_cosine=min_cos,
        mean_cosine=float(cos.mean()),
        worst_index=worst,
        worst_abs=float(per_sample_abs[worst]),
        worst_cosine=float(cos[worst]),
        nan_count=nan_count,
        inf_count=inf_count,
        top1_agreement=top1,
        thresholds=dict(THRESHOLDS),
        passed=_verdict(str(precision), max_abs, min_cos, top1, nan_count + inf_count),
    )
