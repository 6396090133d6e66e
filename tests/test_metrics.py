"""Recall@K on hand-made embeddings with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from frpt_runtime.metrics import format_recall, recall_at_k


def _angles(degrees: list[float]) -> np.ndarray:
    rad = np.deg2rad(degrees)
    return np.stack((np.cos(rad), np.sin(rad)), axis=1)


def test_known_answers() -> None:
    # points on a circle, neighbours ranked by angle; rank of each query's first same-class neighbour:
    # q0 (0deg): 1, 2, 3 -> rank 3;   q1 (10): 0, 2 -> rank 2;   q2 (100): 3, 1 -> rank 2
    # q3 (110): 2, 4 (90deg away), 1, 5, 0 -> rank 5;   q4 -> 5 rank 1;   q5 -> 4 rank 1
    emb = _angles([0, 10, 100, 110, 200, 215])
    labels = [0, 1, 1, 0, 2, 2]
    r = recall_at_k(emb, labels, ks=(1, 2, 3, 4, 5))
    assert r == pytest.approx(
        {"recall@1": 2 / 6, "recall@2": 4 / 6, "recall@3": 5 / 6, "recall@4": 5 / 6, "recall@5": 1.0}
    )


def test_leave_one_out_and_scale_invariance() -> None:
    emb = np.eye(4)  # every sample is orthogonal to the others: only self would match
    labels = [0, 1, 2, 3]
    assert recall_at_k(emb, labels, ks=(1,)) == {"recall@1": 0.0}
    perfect = np.array([[1, 0], [2, 0.01], [0, 1], [0.01, 5]])  # cosine, not Euclidean
    assert recall_at_k(perfect, [0, 0, 1, 1], ks=(1,)) == {"recall@1": 1.0}


def test_ties_prefer_lower_index() -> None:
    # query 0 is equally similar (0.6) to 1 (other class) and 2 (same class): the lower index wins the tie
    emb = np.array([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]])
    assert recall_at_k(emb, [0, 1, 0], ks=(1,))["recall@1"] == pytest.approx(1 / 3)  # only query 2 hits (-> 0)
    assert recall_at_k(emb[[0, 2, 1]], [0, 0, 1], ks=(1,))["recall@1"] == pytest.approx(2 / 3)


def test_errors_and_format() -> None:
    with pytest.raises(ValueError):
        recall_at_k(np.ones((1, 3)), [0])
    with pytest.raises(ValueError):
        recall_at_k(np.ones((3, 3)), [0, 1])
    with pytest.raises(ValueError):
        recall_at_k(np.ones((3, 3)), [0, 1, 2], ks=(8,))
    with pytest.raises(ValueError):
        recall_at_k(np.array([[np.nan, 1.0], [1.0, 0.0]]), [0, 1], ks=(1,))
    assert format_recall({"recall@1": 0.5, "recall@2": 1.0}) == "R@1  50.0  R@2 100.0"


def _write_embed_dir(out, images: list[str], rows: np.ndarray) -> None:
    from runtime_toys import write_embed_output

    write_embed_output(out, images, rows)


def test_recall_from_frpt_embed_output(tmp_path) -> None:
    from frpt_runtime.errors import FrptError
    from frpt_runtime.metrics import recall_from_embeddings

    images = ["b/1.png", "a/1.png", "b/2.png", "a/2.png", "c/x/1.png", "c/x/2.png"]
    rows = _angles([0, 100, 10, 110, 200, 215])  # classes by folder: b, a, b, a, c/x, c/x -> all rank 1
    _write_embed_dir(tmp_path / "ok", images, rows)
    assert recall_from_embeddings(tmp_path / "ok", ks=(1, 2)) == {
        "recall@1": 1.0,
        "recall@2": 1.0,
        "images": 6,
        "classes": 3,
    }
    _write_embed_dir(tmp_path / "bad", images[:5], rows[:5])
    np.save(tmp_path / "bad" / "embeddings.npy", rows.astype(np.float32))  # six rows beside a five-image manifest
    with pytest.raises(FrptError, match="is not the file manifest.json describes"):
        recall_from_embeddings(tmp_path / "bad")
    with pytest.raises(FrptError, match="frpt-embed"):
        recall_from_embeddings(tmp_path / "absent")
    _write_embed_dir(tmp_path / "flat", ["1.png", "2.png", "3.png"], rows[:3])  # no class folders: not 100 %
    with pytest.raises(FrptError, match="all 3 images .* come from one folder"):
        recall_from_embeddings(tmp_path / "flat")
