"""Retrieval over ``frpt-embed`` outputs: FAISS indexes with a checked sidecar, queries, and pictures of results.

Torch-free (it runs on the edge box beside ``frpt-embed``); FAISS is imported only when an index is built, loaded
or searched (``pip install 'frpt-toolkit[search]'``; a GPU build of FAISS installed instead is used the same way).

Python API::

    from frpt_runtime.search import Index, build_index, search_gallery
    report = build_index(["emb/"], "gallery.index", kind="hnsw")   # IndexReport: recall@10 vs exact measured
    index = Index.load("gallery.index")                             # sidecar checked (model, dim, rows, sha256)
    scores, rows = index.search(vectors, k=10)                      # float32 [Q, k], int64 [Q, k]

Modules: :mod:`.index` (the Index), :mod:`.params` (kinds and their parameters), :mod:`.sidecar` (the JSON
beside an index), :mod:`.recall` (recall of an approximate index vs exact; Recall@K through an exact index),
:mod:`.queries` (what a query argument names; embedding query images), :mod:`.building` (build or extend an
index), :mod:`.searching` (search), :mod:`.reports` (their reports), :mod:`.pictures` (contact sheet and HTML
page), :mod:`.cli` (``frpt-index``, ``frpt-search``).
"""

from frpt_runtime.search.building import build_index
from frpt_runtime.search.index import Index
from frpt_runtime.search.reports import Hit, IndexReport, QueryResult, SearchReport
from frpt_runtime.search.searching import SearchJob, run_search_job, search_gallery

__all__ = [
    "Hit",
    "Index",
    "IndexReport",
    "QueryResult",
    "SearchJob",
    "SearchReport",
    "build_index",
    "run_search_job",
    "search_gallery",
]
