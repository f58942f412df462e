"""What ``docqa``'s question extractors share: a document as ingested, a question with its
ground truth and evidence, and the helpers that locate evidence in canonical text.

Offsets are code points of the document's canonical text (DESIGN.md: Span), end exclusive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Doc", "Question", "evidence", "line_runs", "lines_with_offsets"]


@dataclass(frozen=True)
class Doc:
    """One ingested document: display ``name``, ``doc_id`` and canonical ``text``."""

    name: str
    doc_id: str
    text: str


@dataclass
class Question:
    """A question with its ground truth: ``answer`` (the canonical form), ``accepted``
    (every form scored right, the answer included), ``evidence`` (``{"doc", "doc_id",
    "start", "end", "text"}`` pieces that prove it, each ``text`` being
    ``doc.text[start:end]``), and whether it aggregates (counts across lines or files)."""

    kind: str
    question: str
    answer: str
    accepted: list[str]
    evidence: list[dict[str, Any]]
    aggregation: bool = False
    params: dict[str, Any] = field(default_factory=dict)


def evidence(doc: Doc, start: int, end: int) -> dict[str, Any]:
    """The evidence piece ``doc.text[start:end]``. Raises ValueError for an empty or
    out-of-range span (a generator bug)."""
    if not 0 <= start < end <= len(doc.text):
        raise ValueError(f"bad evidence span {start}:{end} of {doc.name} ({len(doc.text)} characters)")
    return {"doc": doc.name, "doc_id": doc.doc_id, "start": start, "end": end, "text": doc.text[start:end]}


def lines_with_offsets(text: str) -> list[tuple[int, str]]:
    """``(start offset, line without its newline)`` for every line of ``text``."""
    out, pos = [], 0
    for line in text.split("\n"):
        out.append((pos, line))
        pos += len(line) + 1
    return out


def line_runs(lines: Sequence[tuple[int, str]], keep: Iterable[int]) -> list[tuple[int, int]]:
    """Group line indices ``keep`` (sorted) into runs of consecutive lines and return the
    ``(start, end)`` character span of each run (end: the end of its last line)."""
    runs: list[tuple[int, int]] = []
    prev = None
    for i in sorted(keep):
        start, line = lines[i]
        end = start + len(line)
        if prev is not None and i == prev + 1:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
        prev = i
    return runs
