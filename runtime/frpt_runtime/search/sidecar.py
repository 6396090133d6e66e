"""The JSON sidecar ``<index>.json`` of a search index: its path, its format, and the checks of its fields.

The sidecar is what makes an index file trustworthy (docs/design.md §5, integrity): it names the format, the
toolkit and FAISS versions, the kind and its parameters, the dimension and row count, the sha256 of the
model whose embeddings the rows are, the sha256 of the index file, every row's image path and label, and
the recall measured against exact search. :meth:`frpt_runtime.search.index.Index.load` compares the index file
with it; here its fields are read and type-checked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from frpt_runtime.errors import FrptError
from frpt_runtime.search.params import DEFAULT_PARAMS, KINDS

__all__ = ["INDEX_FORMAT", "checked_sha256", "read_sidecar", "sidecar_path"]

INDEX_FORMAT = "frpt-index/1"
_HEX = frozenset("0123456789abcdef")
_RECALL_FIELDS = {"k", "queries", "recall", "seed"}


def sidecar_path(index_path: str | os.PathLike[str]) -> Path:
    """``<index>.json`` beside the index file."""
    path = Path(index_path)
    return path.with_name(path.name + ".json")


def checked_sha256(value: object, name: str) -> str:
    """``value`` if it is a lowercase hex sha256 digest.

    Raises:
        FrptError: anything else (``name`` says which field).
    """
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        raise FrptError(f"{name} must be a 64-digit lowercase hex sha256, got {value!r}")
    return value


def read_sidecar(path: Path) -> dict[str, Any]:
    """The sidecar's fields, type-checked (the caller compares the index file with them).

    Raises:
        FrptError: a missing or unreadable file, another format, or missing / inconsistent fields.
    """
    try:
        facts = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FrptError(f"no sidecar {path} beside the index: rebuild it with frpt-index build") from None
    except (OSError, ValueError) as exc:
        raise FrptError(f"cannot read {path} ({type(exc).__name__}): rebuild the index with frpt-index build") from None
    if not isinstance(facts, dict) or facts.get("format") != INDEX_FORMAT:
        raise FrptError(f"{path} is not an {INDEX_FORMAT} sidecar: rebuild the index with frpt-index build")
    count, kind, recall = facts.get("count"), facts.get("kind"), facts.get("recall")
    checks = {
        "kind": isinstance(kind, str) and kind in KINDS,
        "dimension": isinstance(facts.get("dimension"), int) and facts["dimension"] > 0,
        "count": isinstance(count, int) and count >= 0,
        "params": isinstance(facts.get("params"), dict)
        and all(isinstance(v, int) for v in facts["params"].values())
        and set(facts["params"]) == set(DEFAULT_PARAMS.get(kind, {}) if isinstance(kind, str) else {}),
        "paths": _strings(facts.get("paths"), count),
        "labels": _strings(facts.get("labels"), count),
        "index_sha256": isinstance(facts.get("index_sha256"), str),
        "model_sha256": isinstance(facts.get("model_sha256"), str),
        "recall": recall is None or (isinstance(recall, dict) and set(recall) == _RECALL_FIELDS),
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise FrptError(f"{path} has missing or inconsistent fields ({', '.join(bad)}): rebuild the index")
    checked_sha256(facts["model_sha256"], f"{path.name} model_sha256")
    return facts


def _strings(value: object, count: object) -> bool:
    return isinstance(value, list) and len(value) == count and all(isinstance(item, str) for item in value)
