"""Index kinds and their parameters: the defaults, and the check every build runs on what the user asked for.

``flat`` takes none. ``hnsw``: ``M`` (graph links per node), ``ef_construction`` (candidates kept while
inserting), ``ef_search`` (candidates kept while searching; at least k). ``ivf``: ``nlist`` (k-means cells;
default :func:`default_nlist`) and ``nprobe`` (cells searched per query, at most ``nlist``). The defaults reach
recall@10 >= 0.95 on clustered data in tests/test_search_index.py and at 100k rows in benchmarks/bench_search.py
(HNSW 0.998, IVF 1.000); at 1M clustered rows IVF keeps 0.995 but HNSW drops to 0.906 (raise ``ef_search``).
"""

from __future__ import annotations

import math

from frpt_runtime.errors import FrptError

__all__ = ["DEFAULT_PARAMS", "KINDS", "default_nlist", "resolve_params"]

KINDS = ("flat", "hnsw", "ivf")
#: Per-kind parameters and their defaults (``nlist`` None: :func:`default_nlist` of the gallery size).
DEFAULT_PARAMS: dict[str, dict[str, int | None]] = {
    "flat": {},
    "hnsw": {"M": 32, "ef_construction": 40, "ef_search": 128},
    "ivf": {"nlist": None, "nprobe": 16},
}


def default_nlist(count: int) -> int:
    """IVF cells for ``count`` vectors: ``round(4 * sqrt(count))``, capped at ``count // 39`` (k-means wants 39
    points per cell), at least 1."""
    return max(1, min(round(4 * math.sqrt(count)), count // 39))


def resolve_params(kind: str, given: dict[str, int], count: int) -> dict[str, int]:
    """The kind's parameters: :data:`DEFAULT_PARAMS` overridden by ``given``, for a gallery of ``count`` rows.

    Returns:
        Every parameter of ``kind`` as an int >= 1 (``nlist`` resolved, at most ``count``).

    Raises:
        FrptError: an unknown kind or parameter, a value that is not an integer >= 1, ``nlist`` above ``count``.
    """
    if kind not in KINDS:
        raise FrptError(f"unknown index kind {kind!r}: choose one of {', '.join(KINDS)}")
    defaults = DEFAULT_PARAMS[kind]
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        known = ", ".join(defaults) or "none"
        raise FrptError(f"unknown parameter {', '.join(unknown)} for a {kind} index (it takes: {known})")
    resolved = {**defaults, **given}
    if kind == "ivf" and resolved["nlist"] is None:
        resolved["nlist"] = default_nlist(count)
    for name, value in resolved.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise FrptError(f"{kind} parameter {name} must be an integer >= 1, got {value!r}")
    if kind == "ivf" and resolved["nlist"] > count:
        raise FrptError(f"ivf nlist={resolved['nlist']} exceeds the {count} rows to index: pass nlist <= {count}")
    return {name: int(value) for name, value in resolved.items() if value is not None}
