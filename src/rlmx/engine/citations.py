"""Citations: SpanRefs derived from the REPL's span log, never from what the model claims.

Rules (issue 2, issue 13, DESIGN.md invariant 2; docs/citations.md), in order:
1. the spans the code passed to ``FINAL(..., citations=[...])`` that overlap something the
   execution read or was given as a grep/search/find hit (:func:`check_explicit`; the rest
   are refused and the caller reports them);
2. otherwise the places where the answer occurs in a read span or a hit, matched case- and
   whitespace-insensitively on word boundaries: the whole answer, else each line, clause
   and list item of it (:func:`rlmx.engine.evidence.answer_items`); a short piece is cited
   once, preferring small reads and hits; plus the read spans that fed the sub-calls behind
   the answer (a sub-call whose response the answer reuses), plus the citations of child
   executions behind the answer (added by the caller).
Every cited span is widened to whole words and, when short, to its enclosing sentence,
table row or code line; spans are merged per document when they overlap or touch.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..sandbox.base import SpanEvent
from ..types import SpanRef, span_checksum
from .evidence import MAX_WIDEN, answer_items, find_all, widen

__all__ = [
    "MIN_QUOTE",
    "Span",
    "answer_uses",
    "build_spanrefs",
    "check_explicit",
    "derive_spans",
    "merge_spans",
    "refused_message",
    "widen_spans",
]

MIN_QUOTE = 20
MAX_CITATIONS = 50
SMALL_SPAN = 2000
"""Reads and hits up to this many characters are \"tight\": searched first for short pieces."""
TINY = 4
"""Pieces shorter than this (characters) are cited only from tight spans."""
_QUOTED = re.compile(r"[\"“']([^\"”']{" + str(MIN_QUOTE) + r",})[\"”']")

TextOf = Callable[[str, int, int], str]
"""``text_of(doc_id, start, end) -> str``: canonical text of a span."""


@dataclass(frozen=True, order=True)
class Span:
    doc_id: str
    start: int
    end: int


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Merge overlapping or touching spans of the same document; keep first-seen doc order."""
    by_doc: dict[str, list[Span]] = {}
    for s in spans:
        if s.end > s.start:
            by_doc.setdefault(s.doc_id, []).append(s)
    out: list[Span] = []
    for doc_id, items in by_doc.items():
        items.sort()
        cur = items[0]
        for s in items[1:]:
            if s.start <= cur.end:
                cur = Span(doc_id, cur.start, max(cur.end, s.end))
            else:
                out.append(cur)
                cur = s
        out.append(cur)
    return out


def _segments(answer: str) -> list[str]:
    """Candidate quotations of an answer: quoted strings, lines and sentences."""
    segs = [answer, *_QUOTED.findall(answer)]
    for line in answer.splitlines():
        line = line.strip(" \t-*•>")
        segs.append(line)
        segs.extend(re.split(r"(?<=[.!?;:])\s+", line))
        segs.extend(re.split(r"\s*[—…]\s*|\.\.\.|\s[(\[]|[)\]]\s", line))
    seen: set[str] = set()
    out = []
    for s in segs:
        s = s.strip(" \t\"“”'.,;:()[]…")
        if len(s) >= MIN_QUOTE and s not in seen:
            seen.add(s)
            out.append(s)
    return out


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


def answer_uses(answer: str, response: str) -> bool:
    """Whether an answer reuses a sub-call response: one contains the other (up to case and
    whitespace), or they share a segment of at least ``MIN_QUOTE`` characters."""
    a, r = _norm(answer), _norm(response)
    if not a or not r:
        return False
    if r in a or (len(a) >= 8 and a in r):
        return True
    return any(_norm(seg) in r for seg in _segments(response) if len(seg) >= MIN_QUOTE and _norm(seg) in a)


Bounds = Callable[[str, int, int], "Span | None"]
"""``bounds(doc_id, start, end) -> Span | None``: the part of a range the execution may see
(its document or window), used to keep widening inside the context."""


def check_explicit(explicit: Iterable[Span], events: Iterable[SpanEvent]) -> tuple[list[Span], list[Span]]:
    """Split explicit ``FINAL(..., citations=[...])`` spans into ``(accepted, refused)``: a
    span is accepted when it overlaps something the execution read (a ``read`` event, which
    includes text fed to sub-calls) or a grep/search/find hit it was given (a ``scan``)."""
    seen: dict[str, list[tuple[int, int]]] = {}
    for ev in events:
        if ev.end > ev.start:
            seen.setdefault(ev.doc_id, []).append((ev.start, ev.end))
    accepted: list[Span] = []
    refused: list[Span] = []
    for span in explicit:
        ok = span.end > span.start and any(a < span.end and span.start < b for a, b in seen.get(span.doc_id, ()))
        (accepted if ok else refused).append(span)
    return accepted, refused


def refused_message(refused: Iterable[Span], names: Callable[[str], str] | None = None) -> str:
    """The answer's ``error`` for refused explicit citations, e.g. ``"citations refused (never
    read or fed to a sub-call by this execution): d1:900:950"``; at most 10 listed."""
    items = [f"{names(s.doc_id) if names else s.doc_id}:{s.start}:{s.end}" for s in refused]
    more = f" and {len(items) - 10} more" if len(items) > 10 else ""
    return "citations refused (never read or fed to a sub-call by this execution): " + ", ".join(items[:10]) + more


def _sources(events: Iterable[SpanEvent]) -> tuple[list[Span], list[Span]]:
    """``(tight, wide)``: distinct read and scan spans in log order; ``tight`` are those of
    at most ``SMALL_SPAN`` characters (hits, slices the code looked at), ``wide`` the rest."""
    tight: dict[Span, None] = {}
    wide: dict[Span, None] = {}
    for ev in events:
        if ev.end > ev.start:
            span = Span(ev.doc_id, ev.start, ev.end)
            (tight if ev.end - ev.start <= SMALL_SPAN else wide).setdefault(span, None)
    return list(tight), [s for s in merge_spans(wide) if s not in tight]


def _locate(piece: str, tight: list[Span], wide: list[Span], text_of: TextOf) -> list[Span]:
    """Where ``piece`` occurs in the spans the code used: at most one place for a short
    piece (the first tight span, then the first wide one, holding it); one per merged read
    for a quotation of ``MIN_QUOTE`` characters or more. A piece under ``TINY`` characters
    ("1", "a") is looked for only in tight spans, the hits and slices the code looked at."""
    n = len(" ".join(piece.split()))
    out: list[Span] = []
    pools = [tight] if n < TINY else [tight, wide]
    for pool in pools:
        for src in pool:
            text = text_of(src.doc_id, src.start, src.end)
            for a, b in find_all(piece, text, limit=1):
                out.append(Span(src.doc_id, src.start + a, src.start + b))
            if out and n < MIN_QUOTE:
                return out
    return out


def derive_spans(
    answer: str,
    explicit: list[dict[str, int | str]] | None,
    events: Iterable[SpanEvent],
    subcall_responses: Mapping[str, str],
    text_of: TextOf,
    bounds: Bounds | None = None,
) -> list[Span]:
    """Return the merged, widened spans to cite (see module doc). ``events``: the
    execution's span log; ``subcall_responses``: sub-call id → response text; ``explicit``:
    spans the code passed (already checked by :func:`check_explicit`); ``bounds``: the
    execution's visible range of a span (default: the whole document as ``text_of`` reads)."""
    events = list(events)
    if explicit:
        given = [Span(str(c["doc_id"]), int(c["start"]), int(c["end"])) for c in explicit]
        return widen_spans(merge_spans(given), text_of, bounds)[:MAX_CITATIONS]
    tight, wide = _sources(events)
    spans: list[Span] = []
    groups = answer_items(answer)
    missing = [p for p in groups[0] if not _add(spans, _locate(p, tight, wide, text_of))]
    for finer in groups[1:]:  # a piece not found: try its lines, clauses, list items
        if not missing:
            break
        parts = {m: [f for f in finer if _norm(f) in _norm(m)] for m in missing}
        missing = [m for m in missing if not parts[m]] + [
            f
            for f in dict.fromkeys(x for m in missing for x in parts[m])
            if not _add(spans, _locate(f, tight, wide, text_of))
        ]
    behind = {sid for sid, resp in subcall_responses.items() if answer_uses(answer, resp)}
    if behind:
        spans.extend(
            Span(ev.doc_id, ev.start, ev.end)
            for ev in events
            if ev.kind == "read" and ev.end > ev.start and behind.intersection(ev.subcalls)
        )
    return widen_spans(merge_spans(spans), text_of, bounds)[:MAX_CITATIONS]


def _add(spans: list[Span], found: list[Span]) -> bool:
    spans.extend(found)
    return bool(found)


def widen_spans(spans: Iterable[Span], text_of: TextOf, bounds: Bounds | None = None) -> list[Span]:
    """Widen each span to whole words and, when short, its enclosing sentence, table row or
    code line (:func:`rlmx.engine.evidence.widen`), within ``bounds``; then merge."""
    out: list[Span] = []
    for s in spans:
        if bounds is not None:
            box = bounds(s.doc_id, s.start - MAX_WIDEN - 1, s.end + MAX_WIDEN + 1)
            lo, hi = (box.start, box.end) if box is not None else (s.start, s.end)
        else:
            lo, hi = 0, 1 << 62  # text_of stops at the document's end
        lo, hi = min(lo, s.start), max(hi, s.end)
        a, b = widen(s.start, s.end, functools.partial(text_of, s.doc_id), lo, hi)
        out.append(Span(s.doc_id, a, b))
    return merge_spans(out)


def build_spanrefs(spans: Iterable[Span], text_of: TextOf, name_of: Callable[[str], str]) -> list[SpanRef]:
    """Checksum each span over the stored canonical text (DESIGN.md SpanRef)."""
    refs = []
    for s in spans:
        text = text_of(s.doc_id, s.start, s.end)
        refs.append(
            SpanRef(
                doc_id=s.doc_id,
                doc_name=name_of(s.doc_id),
                start=s.start,
                end=s.start + len(text),
                checksum=span_checksum(text),
                text=text,
            )
        )
    return refs
