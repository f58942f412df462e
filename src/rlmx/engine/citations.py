"""Citations: SpanRefs derived from the REPL's span log, never from what the model claims.

Rules (issue 2, DESIGN.md invariant 2), in order:
1. the spans the code passed to ``FINAL(..., citations=[...])``;
2. otherwise the read spans whose text the answer quotes (segments of at least
   ``MIN_QUOTE`` characters, matched exactly or up to whitespace) — cited precisely, only
   the quoted range — plus the read spans that fed the sub-calls behind the answer (a
   sub-call whose response the answer reuses), plus the citations of child executions
   behind the answer.
Spans are merged per document when they overlap or touch; scans (grep/search matches that
were never read) are never citations by themselves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..sandbox.base import SpanEvent
from ..types import SpanRef, span_checksum

__all__ = ["MIN_QUOTE", "Span", "answer_uses", "build_spanrefs", "derive_spans", "merge_spans"]

MIN_QUOTE = 20
MAX_CITATIONS = 50
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


def _find_quote(segment: str, text: str) -> tuple[int, int] | None:
    i = text.find(segment)
    if i >= 0:
        return i, i + len(segment)
    words = segment.split()
    if len(words) < 2:
        return None
    m = re.search(r"\s+".join(re.escape(w) for w in words), text)
    return (m.start(), m.end()) if m else None


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


def derive_spans(
    answer: str,
    explicit: list[dict[str, int | str]] | None,
    events: Iterable[SpanEvent],
    subcall_responses: Mapping[str, str],
    text_of: TextOf,
) -> list[Span]:
    """Return the merged spans to cite (see module doc). ``events``: the execution's span
    log; ``subcall_responses``: sub-call id → response text."""
    if explicit:
        return merge_spans(Span(str(c["doc_id"]), int(c["start"]), int(c["end"])) for c in explicit)
    reads: dict[Span, SpanEvent] = {}
    for ev in events:
        if ev.kind == "read" and ev.end > ev.start:
            reads.setdefault(Span(ev.doc_id, ev.start, ev.end), ev)
    spans: list[Span] = []
    segments = _segments(answer)
    if segments:
        for span in merge_spans(reads):
            text = text_of(span.doc_id, span.start, span.end)
            for seg in segments:
                hit = _find_quote(seg, text)
                if hit:
                    spans.append(Span(span.doc_id, span.start + hit[0], span.start + hit[1]))
    behind = {sid for sid, resp in subcall_responses.items() if answer_uses(answer, resp)}
    if behind:
        spans.extend(s for s, ev in reads.items() if behind.intersection(ev.subcalls))
    return merge_spans(spans)[:MAX_CITATIONS]


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
