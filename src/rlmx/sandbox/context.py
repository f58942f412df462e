"""``context`` inside the REPL process: lazy views of stored canonical texts (DESIGN.md,
"The REPL contract"). This module holds the collection and the state its views share; one
document's view (:class:`~rlmx.sandbox.docview.DocView`, :class:`~rlmx.sandbox.docview.Hit`)
is :mod:`rlmx.sandbox.docview`'s.

* :class:`ContextView` (``ContextSpec.kind == "corpus"``): ``len(context)`` documents,
  ``context[i]`` a DocView, ``context.names``, ``context.total_chars``,
  ``context.grep(pattern)``, ``context.search(query, k)``, ``context.doc(name_or_id)``.
  With ``kind == "text"``, ``context`` *is* the single DocView, so it behaves like the
  paper's ``str``.
* :class:`_Context`: the span log, the views, and ``search`` (BM25 asked of the
  orchestrator, or a keyword scan here).

Texts are memory-mapped (:class:`rlmx.corpus.canonical.TextReader`, at most
``MAX_OPEN_READERS`` open at once) and never loaded whole unless the code asks for the
whole text, so memory does not grow with the corpus.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from . import _scan
from ._readers import MAX_OPEN_READERS, ReaderPool, Source
from .docview import DocView, Hit, grep_views
from .spanlog import SpanLog

__all__ = ["MAX_OPEN_READERS", "ContextView", "Searcher", "context_state", "open_context"]

Searcher = Callable[[dict[str, Any]], Any]
"""Answers a ``search`` request payload (``{"query", "k", "doc_ids", "windows"}``) with rows
``[doc_id, start, end, score, w]`` or None (no index covers the context): in the REPL, a
tool request to the orchestrator (see :class:`rlmx.sandbox.base.ToolRequest`)."""


class _Context:
    """State shared by the views of one ``context``: span log, views, searcher."""

    def __init__(self, spec: Mapping[str, Any], log: SpanLog, searcher: Searcher | None = None) -> None:
        self.log = log
        self.kind = spec.get("kind", "corpus")
        self.index_path = spec.get("index_path")
        pool = ReaderPool()
        self.views: list[DocView] = []
        for d in spec["docs"]:
            src = Source(d, pool)
            w = d.get("window")
            lo, hi = (0, src.length) if w is None else (int(w[0]), int(w[1]))
            if not 0 <= lo <= hi <= src.length:
                raise ValueError(f"document {src.doc_id}: window {w} outside 0..{src.length}")
            self.views.append(DocView(src, lo, hi, self))
        self.searcher = searcher
        self._use_index: bool | None = None  # False once told the index does not cover it

    def resolve(self, ref: Any) -> DocView:
        """A DocView from a DocView, an index, a doc_id or a name. Raises KeyError/IndexError."""
        if isinstance(ref, DocView):
            return ref
        if isinstance(ref, Hit):
            return ref.doc
        if isinstance(ref, int) and not isinstance(ref, bool):
            return self.views[ref]
        if isinstance(ref, str):
            for v in self.views:
                if ref == v.id:
                    return v
            for v in self.views:
                if ref == v.name:
                    return v
            near = difflib.get_close_matches(ref, [v.name for v in self.views], n=3)
            hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
            raise KeyError(f"no document with id or name {ref!r}{hint}")
        raise TypeError(f"expected a document, an index, a doc_id or a name, got {type(ref).__name__}")

    def search(self, query: str, k: int, views: list[DocView]) -> list[Hit]:
        """BM25 hits among ``views`` (clipped to their windows), best first: asked of the
        orchestrator (:attr:`searcher`, a ``search`` tool request) when the spec has an
        index, else — or when it answers that the index does not cover the context — a
        keyword scan of the texts here."""
        if not isinstance(query, str):
            raise TypeError("search(query, k): query must be a str")
        k = int(k)
        if k <= 0 or not views:
            return []
        hits: list[Hit] | None = None
        if self.index_path and self.searcher is not None and self._use_index is not False:
            hits = self._remote_search(query, k, views)
        if hits is None:
            hits = []
            by_key = {(v.id, v._lo, v._hi): v for v in views}
            readers = {v.id: v._src.read for v in views}
            ranges = [(v.id, v._lo, v._hi) for v in views]
            for score, doc_id, s, e in _scan.keyword_scores(readers.__getitem__, query, ranges, k):
                v = next(v for (i, lo, hi), v in by_key.items() if i == doc_id and lo <= s < hi)
                hits.append(Hit(v, s - v._lo, e - v._lo, score))
        hits = hits[:k]
        for h in hits:
            self.log.scan(h.doc_id, h.doc._lo + h.start, h.doc._lo + h.end)
        return hits

    def _remote_search(self, query: str, k: int, views: list[DocView]) -> list[Hit] | None:
        """Hits from the orchestrator's answer (rows ``[doc_id, start, end, score, w]``,
        absolute, clipped to ``views[w]``); None when it has no index covering the context
        (remembered: later searches scan without asking)."""
        assert self.searcher is not None
        payload = {
            "query": query,
            "k": k,
            "doc_ids": sorted({v.id for v in views}),
            "windows": [[v.id, v._lo, v._hi] for v in views],
        }
        rows = self.searcher(payload)
        if rows is None:
            self._use_index = False
            return None
        self._use_index = True
        hits: list[Hit] = []
        try:
            for doc_id, s, e, score, w in rows:
                v = views[int(w)]
                s, e = int(s), int(e)
                if v.id != doc_id or not v._lo <= s <= e <= v._hi:
                    raise ValueError(f"row {doc_id}:{s}:{e} is outside the view searched")
                hits.append(Hit(v, s - v._lo, e - v._lo, float(score)))
        except (TypeError, ValueError, IndexError) as err:
            raise RuntimeError(f"search: the orchestrator returned a malformed reply ({err})") from None
        return hits


class ContextView:
    """A lazy list of documents (``ContextSpec.kind == "corpus"``); see module doc."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: _Context) -> None:
        self._ctx = ctx

    def __len__(self) -> int:
        return len(self._ctx.views)

    def __getitem__(self, key: int | slice | str) -> Any:
        if isinstance(key, str):
            return self._ctx.resolve(key)
        return self._ctx.views[key]

    def __iter__(self) -> Iterator[DocView]:
        return iter(self._ctx.views)

    def __repr__(self) -> str:
        shown = ", ".join(f"{v.name} ({len(v):,})" for v in self._ctx.views[:5])
        more = f", … {len(self) - 5} more" if len(self) > 5 else ""
        return f"<context: {len(self)} documents, {self.total_chars:,} characters: {shown}{more}>"

    @property
    def names(self) -> list[str]:
        return [v.name for v in self._ctx.views]

    @property
    def ids(self) -> list[str]:
        return [v.id for v in self._ctx.views]

    @property
    def total_chars(self) -> int:
        return sum(len(v) for v in self._ctx.views)

    def doc(self, name_or_id: str | int) -> DocView:
        """The document with this id, name or index. Raises ``KeyError`` (with suggestions)."""
        return self._ctx.resolve(name_or_id)

    def grep(self, pattern: str | re.Pattern[str], flags: int = 0, max_hits: int = 1000) -> list[Hit]:
        """Regex (``re`` syntax, ``flags`` as for ``re.compile``) matches across documents,
        in document order, at most ``max_hits``. Hits carry spans; matches are scans, not
        reads. A match may not extend more than 4,096 characters past a ~1M-character block
        boundary; zero-length matches are skipped."""
        return grep_views(self._ctx.views, pattern, flags, max_hits)

    def search(self, query: str, k: int = 10) -> list[Hit]:
        """Up to ``k`` keyword hits (BM25 over ~1,000-character chunks, SQLite FTS5 with
        stemming; a plain scan when no index covers the documents), best first. Quoted
        phrases are kept; other words are OR-ed."""
        return self._ctx.search(query, k, self._ctx.views)


def open_context(spec: Mapping[str, Any], log: SpanLog, searcher: Searcher | None = None) -> ContextView | DocView:
    """Build ``context`` from a ``ContextSpec`` dict (``ContextSpec.model_dump()``).

    ``searcher`` answers ``search`` requests (BM25 over the spec's index, which this module
    never opens); without one (the REPL's tools set it on the state later) searches scan.
    Returns a :class:`ContextView`, or the single :class:`DocView` when ``kind == "text"``.
    Raises ``ValueError`` for a text spec without exactly one document or a bad window,
    ``FileNotFoundError`` when a text file is missing. Files are opened lazily.
    """
    ctx = _Context(spec, log, searcher)
    for v in ctx.views:
        v._src.check()
    if ctx.kind == "text":
        if len(ctx.views) != 1:
            raise ValueError(f"a 'text' context needs exactly one document, got {len(ctx.views)}")
        return ctx.views[0]
    return ContextView(ctx)


def context_state(context: ContextView | DocView) -> _Context:
    """The shared state behind ``context`` (for the REPL namespace). Raises TypeError for a
    view not built by :func:`open_context`."""
    ctx = context._ctx
    if not isinstance(ctx, _Context):
        raise TypeError(f"not a context built by open_context: {type(ctx).__name__}")
    return ctx
