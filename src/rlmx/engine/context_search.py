"""``search`` requests of the REPL (``context.search``, which has no access to any FTS
index), answered in the orchestrator's process: BM25 over the index named by the execution's
**own** ``ContextSpec`` — its corpus's index blob (``docs/search.md``), opened read-only and
immutable — restricted to the spec's documents and windows whatever the request names (a
child given windows on its parent's documents keeps the parent's index and is filtered by
doc ids and windows). Used by :class:`rlmx.engine.resolver.ToolResolverImpl`."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from typing import Any

from ..corpus.index import SearchIndex
from ..sandbox.base import ContextSpec

__all__ = ["MAX_SEARCH_K", "ContextSearch", "search_context"]

MAX_SEARCH_K = 10_000
"""The most hits one ``search`` request returns (a larger ``k`` is lowered to it)."""
_MAX_FETCH = 1_000_000  # rows read from the index for one request, at most


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _int(x: Any, what: str) -> int:
    if not isinstance(x, int) or isinstance(x, bool):
        raise TypeError(f"search: {what} must be an int, got {type(x).__name__}")
    return x


class ContextSearch:
    """Answers the ``search`` requests of the REPL over ``spec`` (see
    :class:`~rlmx.sandbox.base.ToolRequest`): BM25 rows from ``spec.index_path``, only for
    the documents of ``spec`` and only inside their windows — doc ids and windows named by
    the request are intersected with the spec, never trusted. Returns None when the spec
    has no index or the index does not hold every document of the spec (the REPL scans)."""

    def __init__(self, spec: ContextSpec) -> None:
        self.spec = spec
        by_doc: dict[str, list[tuple[int, int]]] = {}
        self.length: dict[str, int] = {}
        for d in spec.docs:
            lo, hi = d.window or (0, d.length)
            by_doc.setdefault(d.doc_id, []).append((int(lo), int(hi)))
            self.length[d.doc_id] = d.length
        self.allowed = {doc_id: _merge(r) for doc_id, r in by_doc.items()}
        self._covered: bool | None = None
        self._exact = False  # the index holds exactly the spec's documents (a corpus's own index)

    def covered(self) -> bool:
        """Whether the spec's index holds every document of the spec (checked once)."""
        if self._covered is None:
            path = self.spec.index_path
            ok = False
            if path and os.path.exists(path):
                try:
                    index = SearchIndex(path, readonly=True, immutable=True)
                    try:
                        ok = all(index.has(i) for i in self.allowed)
                        self._exact = ok and index.info().get("documents") == str(len(self.allowed))
                    finally:
                        index.close()
                except sqlite3.Error:
                    ok = False
            self._covered = ok
        return self._covered

    def _pieces(self, payload: Mapping[str, Any]) -> list[tuple[int, str, int, int]]:
        """``(w, doc_id, lo, hi)``: the request's windows intersected with the spec's."""
        asked = payload.get("doc_ids")
        if asked is None:
            ids = set(self.allowed)
        elif isinstance(asked, list | tuple):
            ids = {i for i in asked if isinstance(i, str)} & set(self.allowed)
        else:
            raise TypeError("search: doc_ids must be a list of document ids")
        windows = payload.get("windows")
        if windows is None:
            windows = [[d.doc_id, *(d.window or (0, d.length))] for d in self.spec.docs]
        if not isinstance(windows, list | tuple) or len(windows) > len(self.spec.docs):
            raise ValueError("search: windows must be a list of at most one [doc_id, start, end] per document")
        pieces: list[tuple[int, str, int, int]] = []
        for w, item in enumerate(windows):
            if not isinstance(item, list | tuple) or len(item) != 3:
                raise ValueError("search: each window is [doc_id, start, end]")
            doc_id, wlo, whi = item[0], _int(item[1], "a window start"), _int(item[2], "a window end")
            if not isinstance(doc_id, str) or doc_id not in ids:
                continue
            for alo, ahi in self.allowed[doc_id]:
                lo, hi = max(wlo, alo), min(whi, ahi)
                if lo < hi or (lo == hi and wlo == whi):
                    pieces.append((w, doc_id, lo, hi))
        return pieces

    def __call__(self, payload: Mapping[str, Any]) -> list[list[Any]] | None:
        """Rows ``[doc_id, start, end, score, w]`` (absolute offsets, a chunk clipped to
        ``windows[w]``), best first, at most ``k``; or None (see the class doc). Blocking
        (SQLite): call it in a thread. Raises TypeError/ValueError for a malformed request."""
        query = payload.get("query")
        if not isinstance(query, str):
            raise TypeError("search: query must be a str")
        k = min(_int(payload.get("k", 10), "k"), MAX_SEARCH_K)
        if k <= 0:
            return []
        pieces = self._pieces(payload)
        if not self.covered():
            return None
        if not pieces:
            return []
        by_doc: dict[str, list[tuple[int, str, int, int]]] = {}
        for piece in pieces:
            by_doc.setdefault(piece[1], []).append(piece)
        ids = sorted(by_doc)
        whole = all(lo == 0 and hi == self.length[d] for _, d, lo, hi in pieces)
        fetch = k if whole else 4 * k
        assert self.spec.index_path is not None
        index = SearchIndex(self.spec.index_path, readonly=True, immutable=True)
        try:
            while True:
                # the doc-id filter is only skipped when it would keep every row anyway
                rows = index.search(
                    query, fetch, doc_ids=None if self._exact and len(ids) == len(self.allowed) else ids
                )
                out: list[list[Any]] = []
                for row in rows:
                    for w, d, lo, hi in by_doc.get(row.doc_id, ()):
                        if row.start < hi and row.end > lo:
                            out.append([d, max(row.start, lo), min(row.end, hi), row.score, w])
                if len(out) >= k or len(rows) < fetch or fetch >= 64 * k or fetch >= _MAX_FETCH:
                    break
                fetch *= 4
        finally:
            index.close()
        return out[:k]


def search_context(spec: ContextSpec, payload: Mapping[str, Any]) -> list[list[Any]] | None:
    """Answer one ``search`` request over ``spec`` (see :class:`ContextSearch`)."""
    return ContextSearch(spec)(payload)
