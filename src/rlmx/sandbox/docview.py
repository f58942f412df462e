"""One document as the REPL code sees it: :class:`DocView` (a document, or a window of one)
and :class:`Hit` (a match with its span), plus :func:`grep_views`, the regex search over
views that ``doc.grep`` and ``context.grep`` share (DESIGN.md, "The REPL contract").

* :class:`DocView`: ``len(doc)`` in characters (code points); ``doc[a:b]``/``doc[i]``
  return ``str``; ``find``/``rfind``/``count``/``in`` scan block by block;
  ``grep``/``search``/``lines``; any other ``str`` method (``split``, ``splitlines``,
  ``lower``...) applies to the whole text.
* :class:`Hit`: ``hit.text``, ``hit.context(chars)``.

Offsets the code sees are relative to the view: a document seen through ``window=(s, e)``
has length ``e - s`` and its offset 0 is ``s``. The span log (:mod:`rlmx.sandbox.spanlog`)
always records absolute offsets. The collection of views, its shared state and BM25 search
are :mod:`rlmx.sandbox.context`'s; a view reaches them through :class:`ViewOwner`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any, Protocol

from rlmx.corpus.canonical import TextReader

from . import _prefilter, _scan, regex_engine
from ._readers import Source
from .spanlog import SpanLog

__all__ = ["DocView", "Hit", "ViewOwner", "grep_views"]

_PREVIEW_CHARS = 80


class ViewOwner(Protocol):
    """What a view needs of the ``context`` it belongs to (satisfied by
    :class:`rlmx.sandbox.context._Context`): the span log, and BM25 search over views."""

    log: SpanLog

    def search(self, query: str, k: int, views: list[DocView]) -> list[Hit]:
        """Up to ``k`` hits among ``views``, best first (logged as scans)."""
        ...


def grep_views(views: list[DocView], pattern: str | re.Pattern[str], flags: int, max_hits: int) -> list[Hit]:
    """Regex matches in ``views``, in order, at most ``max_hits`` (logged as scans); see
    ``ContextView.grep``. Paths, fastest first (docs: rlmx.sandbox.regex_engine): a
    case-sensitive literal prefilter over the raw bytes, else RE2 candidates checked by
    ``re``, else ``re`` alone."""
    regex = _scan.compile_pattern(pattern, flags)
    literal = _prefilter.required_literal(regex)
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
                spans = _prefilter.grep_prefiltered(reader, v._src.read, regex, text, v._lo, v._hi, left, offset=offset)
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

    def __init__(self, src: Source, start: int, end: int, ctx: ViewOwner) -> None:
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
        return grep_views([self], pattern, flags, max_hits)

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
