"""``context`` inside the REPL process: lazy views of stored canonical texts (DESIGN.md,
"The REPL contract").

* :class:`ContextView` (``ContextSpec.kind == "corpus"``): ``len(context)`` documents,
  ``context[i]`` a :class:`DocView`, ``context.names``, ``context.total_chars``,
  ``context.grep(pattern)``, ``context.search(query, k)``, ``context.doc(name_or_id)``.
* :class:`DocView`: one document (or a window of one). ``len(doc)`` in characters (code
  points); ``doc[a:b]``/``doc[i]`` return ``str``; ``find``/``rfind``/``count``/``in`` scan
  block by block; ``grep``/``search``/``lines``; any other ``str`` method (``split``,
  ``splitlines``, ``lower``...) applies to the whole text. With ``kind == "text"``,
  ``context`` *is* the single DocView, so it behaves like the paper's ``str``.
* :class:`Hit`: a match with its span; ``hit.text``, ``hit.context(chars)``.

Offsets the code sees are relative to the view: a document seen through
``window=(s, e)`` has length ``e - s`` and its offset 0 is ``s``. The span log
(:mod:`rlmx.sandbox.spanlog`) always records absolute offsets. Texts are memory-mapped
(:class:`rlmx.corpus.canonical.TextReader`, at most ``MAX_OPEN_READERS`` open at once) and
never loaded whole unless the code asks for the whole text, so memory does not grow with
the corpus.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from rlmx.corpus.canonical import TextReader

from . import _scan, regex_engine
from ._readers import MAX_OPEN_READERS, ReaderPool, Source
from .spanlog import SpanLog

__all__ = ["MAX_OPEN_READERS", "ContextView", "DocView", "Hit", "open_context"]

_PREVIEW_CHARS = 80


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


def _grep(views: list[DocView], pattern: str | re.Pattern[str], flags: int, max_hits: int) -> list[Hit]:
    """Paths, fastest first (docs: rlmx.sandbox.regex_engine): a case-sensitive literal
    prefilter over the raw bytes, else RE2 candidates checked by ``re``, else ``re`` alone."""
    regex = _scan.compile_pattern(pattern, flags)
    literal = _scan.required_literal(regex)
    finder = None if literal is not None else regex_engine.compile_candidates(regex)
    hits: list[Hit] = []
    for v in views:
        left = int(max_hits) - len(hits)
        reader = None
        if literal is not None or finder is not None:  # search the raw bytes
            with contextlib.suppress(OSError, ValueError):
                reader = TextReader(v._src.text_path, v._src.length, v._src.index_path)
        try:
            if reader is not None and literal is not None:
                text, offset = literal
                spans = _scan.grep_prefiltered(reader, v._src.read, regex, text, v._lo, v._hi, left, offset=offset)
            elif reader is not None and finder is not None:
                spans = regex_engine.grep_candidates(reader, v._src.read, regex, finder, v._lo, v._hi, left)
            else:
                spans = _scan.grep(v._src.read, regex, v._lo, v._hi, left)
            for s, e in spans:
                v._ctx.log.scan(v.id, s, e)
                hits.append(Hit(v, s - v._lo, e - v._lo, None))
        finally:
            if reader is not None:
                reader.close()
        if len(hits) >= max_hits:
            break
    return hits


class Hit:
    """A match in a document: ``doc`` (DocView), ``doc_id``, ``doc_name``, ``start``/``end``
    (characters, relative to the view, end exclusive), ``score`` (BM25, larger is better;
    None for grep). ``hit.text`` and ``hit.context(chars)`` read (and log) text."""

    __slots__ = ("doc", "end", "score", "start")

    def __init__(self, doc: DocView, start: int, end: int, score: float | None) -> None:
        self.doc = doc
        self.start = start
        self.end = end
        self.score = score

    @property
    def doc_id(self) -> str:
        return self.doc.id

    @property
    def doc_name(self) -> str:
        return self.doc.name

    @property
    def span(self) -> tuple[int, int]:
        return self.start, self.end

    @property
    def text(self) -> str:
        """The matched text ``doc[start:end]`` (logged as a read)."""
        return self.doc[self.start : self.end]

    def context(self, chars: int = 300) -> str:
        """Up to ``chars`` characters either side of the match plus the match (logged as a
        read of exactly the returned range)."""
        chars = max(0, int(chars))
        return self.doc[max(0, self.start - chars) : self.end + chars]

    def __repr__(self) -> str:
        n = min(self.end - self.start, _PREVIEW_CHARS - 3)
        preview = self.doc[self.start : self.start + n]
        if n < self.end - self.start:
            preview += "..."
        score = "" if self.score is None else f", score={self.score:.2f}"
        return f"Hit({self.doc.name!r}, {self.start}:{self.end}{score}, {preview!r})"


class DocView:
    """One document as the code sees it (see module doc): ``id``, ``name``, ``meta``,
    ``window`` (absolute ``(start, end)`` seen, the whole text when not windowed)."""

    __slots__ = ("_ctx", "_hi", "_lo", "_src")

    def __init__(self, src: Source, start: int, end: int, ctx: _Context) -> None:
        self._src = src
        self._lo = start
        self._hi = end
        self._ctx = ctx

    @property
    def id(self) -> str:
        return self._src.doc_id

    @property
    def name(self) -> str:
        return self._src.name

    @property
    def meta(self) -> dict[str, Any]:
        return self._src.meta

    @property
    def window(self) -> tuple[int, int]:
        return self._lo, self._hi

    def __len__(self) -> int:
        return self._hi - self._lo

    def _read(self, a: int, b: int) -> str:
        """Read relative ``[a, b)`` (already clamped) and log it."""
        s, e = self._lo + a, self._lo + b
        text = self._src.read(s, e)
        self._ctx.log.read(self.id, s, e, text, self._src.read)
        return text

    def _bounds(self, start: int | None, end: int | None) -> tuple[int, int] | None:
        """str.find-style bounds, relative (``end < start`` possible); None when start is
        past the end of the document."""
        n = len(self)
        if start is not None and start > n:
            return None
        a, b, _ = slice(start, end).indices(n)
        return a, b

    def __getitem__(self, key: int | slice) -> str:
        n = len(self)
        if isinstance(key, slice):
            a, b, step = key.indices(n)
            if step == 1:
                return self._read(a, b) if b > a else ""
            lo, hi = (a, b) if step > 0 else (b + 1, a + 1)
            if hi <= lo:
                return ""
            return self._read(lo, hi)[slice(a - lo, (b - lo) if b - lo >= 0 else None, step)]
        if not isinstance(key, int):
            raise TypeError(f"document indices must be int or slice, not {type(key).__name__}")
        i = key + n if key < 0 else key
        if not 0 <= i < n:
            raise IndexError("document index out of range")
        return self._read(i, i + 1)

    def __str__(self) -> str:
        return self._read(0, len(self))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __repr__(self) -> str:
        whole = (self._lo, self._hi) == (0, self._src.length)
        w = "" if whole else f", window={self._lo}:{self._hi}"
        return f"<document {self.name!r} id={self.id} len={len(self):,}{w}>"

    def __iter__(self) -> Iterator[str]:
        for base, text, lo, hi in _scan.iter_blocks(self._src.read, self._lo, self._hi):
            self._ctx.log.read(self.id, base + lo, base + hi, text[lo:hi], self._src.read)
            yield from text[lo:hi]

    def __contains__(self, sub: object) -> bool:
        if not isinstance(sub, str):
            raise TypeError(f"'in <document>' requires str as left operand, not {type(sub).__name__}")
        return self.find(sub) >= 0

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DocView):
            return (self.id, self._lo, self._hi) == (other.id, other._lo, other._hi)
        if isinstance(other, str):
            return len(other) == len(self) and str(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.id, self._lo, self._hi))

    def __add__(self, other: object) -> str:
        return str(self) + (str(other) if isinstance(other, DocView) else other)  # type: ignore[operator]

    def __radd__(self, other: object) -> str:
        return other + str(self)  # type: ignore[operator]

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_") and hasattr(str, name):
            return getattr(str(self), name)  # str methods apply to the whole text (a read)
        raise AttributeError(
            f"document has no attribute {name!r}; use len(doc), doc[a:b], doc.find, doc.grep, "
            "doc.search, doc.lines, .id, .name, .meta or any str method"
        )

    # -- scans (logged as "scan" when they find something) ---------------------------
    def _scan_result(self, i: int, n: int) -> int:
        if i < 0:
            return -1
        self._ctx.log.scan(self.id, i, i + n)
        return i - self._lo

    def find(self, sub: str, start: int | None = None, end: int | None = None) -> int:
        """Like ``str.find``: the lowest offset of ``sub`` in ``doc[start:end]``, or -1.
        Scans block by block."""
        b = self._bounds(start, end)
        if b is None:
            return -1
        return self._scan_result(_scan.find(self._src.read, _as_str(sub), self._lo + b[0], self._lo + b[1]), len(sub))

    def rfind(self, sub: str, start: int | None = None, end: int | None = None) -> int:
        """Like ``str.rfind``: the highest offset of ``sub`` in ``doc[start:end]``, or -1."""
        b = self._bounds(start, end)
        if b is None:
            return -1
        return self._scan_result(_scan.rfind(self._src.read, _as_str(sub), self._lo + b[0], self._lo + b[1]), len(sub))

    def index(self, sub: str, start: int | None = None, end: int | None = None) -> int:
        """Like :meth:`find` but raises ``ValueError`` when not found."""
        i = self.find(sub, start, end)
        if i < 0:
            raise ValueError("substring not found")
        return i

    def rindex(self, sub: str, start: int | None = None, end: int | None = None) -> int:
        """Like :meth:`rfind` but raises ``ValueError`` when not found."""
        i = self.rfind(sub, start, end)
        if i < 0:
            raise ValueError("substring not found")
        return i

    def count(self, sub: str, start: int | None = None, end: int | None = None) -> int:
        """Like ``str.count`` (non-overlapping occurrences); not logged."""
        b = self._bounds(start, end)
        if b is None:
            return 0
        return _scan.count(self._src.read, _as_str(sub), self._lo + b[0], self._lo + b[1])

    def startswith(self, prefix: str | tuple[str, ...]) -> bool:
        prefixes = (prefix,) if isinstance(prefix, str) else prefix
        return any(self[: len(p)] == p for p in prefixes)

    def endswith(self, suffix: str | tuple[str, ...]) -> bool:
        suffixes = (suffix,) if isinstance(suffix, str) else suffix
        return any(len(s) <= len(self) and self[len(self) - len(s) :] == s for s in suffixes)

    def grep(self, pattern: str | re.Pattern[str], flags: int = 0, max_hits: int = 1000) -> list[Hit]:
        """Regex matches in this document, in order, at most ``max_hits``; see
        :meth:`ContextView.grep`."""
        return _grep([self], pattern, flags, max_hits)

    def search(self, query: str, k: int = 10) -> list[Hit]:
        """BM25 keyword search within this document; see :meth:`ContextView.search`."""
        return self._ctx.search(query, k, [self])

    def lines(self, a: int, b: int | None = None) -> str:
        """Lines ``a`` to ``b`` (0-based, ``b`` exclusive; default ``a + 1``), with their
        newlines, as one str (a read). Scans for newlines from the start of the document."""
        b = a + 1 if b is None else b
        if a < 0 or b < a:
            raise ValueError("lines(a, b) needs 0 <= a <= b")
        if b == a:
            return ""
        line, lo_abs, hi_abs = 0, (self._lo if a == 0 else -1), self._hi
        for base, text, lo, hi in _scan.iter_blocks(self._src.read, self._lo, self._hi):
            n = text.count("\n", lo, hi)
            if line + n < a:
                line += n
                continue
            i = lo
            while (nl := text.find("\n", i, hi)) >= 0:
                line, i = line + 1, nl + 1
                if line == a:
                    lo_abs = base + i
                if line == b:
                    hi_abs = base + i
                    break
            if line >= b:
                break
        if lo_abs < 0:
            return ""
        return self[lo_abs - self._lo : hi_abs - self._lo]


def _as_str(sub: object) -> str:
    if not isinstance(sub, str):
        raise TypeError(f"must be str, not {type(sub).__name__}")
    return sub


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
        return _grep(self._ctx.views, pattern, flags, max_hits)

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
    """The shared state behind ``context`` (for the REPL namespace)."""
    return context._ctx
