"""The trace viewer's view-model: the frozen data the page renders (executions, turns,
sub-calls, budgets, citations and the text windows around them), plus the ids that tie
them together (:func:`dom_id`, :func:`citation_key`). Built from a trace by :mod:`.build`;
no I/O here. Times are seconds; costs USD (None: a model had no known price); offsets
characters; a :class:`TextView` says how many characters its capped text had.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BudgetRow",
    "CitationView",
    "CitationWindow",
    "ExecutionView",
    "PageView",
    "SubcallView",
    "TextView",
    "TurnView",
    "citation_key",
    "dom_id",
]


@dataclass(frozen=True)
class TextView:
    """A text as shown: ``text`` (at most the cap), ``total`` its full length in characters."""

    text: str
    total: int

    @property
    def cut(self) -> int:
        """Characters not shown (0 when the whole text is)."""
        return self.total - len(self.text)


@dataclass(frozen=True)
class CitationWindow:
    """The stored canonical text around a cited span: ``before`` + ``span`` + ``after``
    (``window_start``..``window_end`` in the document of ``doc_length`` characters), and
    whether the citation verifies (``ok``; ``reason`` when not, as ``rlmx verify`` says)."""

    before: str
    span: str
    after: str
    window_start: int
    window_end: int
    doc_length: int
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class CitationView:
    """One citation of an answer; ``window`` None when its text could not be read (then
    ``ok`` False and ``reason`` say why)."""

    index: int
    dom_id: str
    doc_id: str
    doc_name: str
    start: int
    end: int
    checksum: str
    text: str
    window: CitationWindow | None
    ok: bool
    reason: str


@dataclass(frozen=True)
class SubcallView:
    """A sub-call: ``kind`` (``llm_query``, ``rlm_query``…), cached or paid, tokens, cost
    (USD), latency (seconds), and ``child_id`` when it started a child execution."""

    id: str
    kind: str
    turn: int
    model: str
    cached: bool
    cache_error: str | None
    abandoned: bool
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    seconds: float | None
    prompt: TextView | None
    response: TextView | None
    child_id: str | None


@dataclass(frozen=True)
class TurnView:
    """One turn: the root LM's response, the code it ran, the output and observation, the
    error, the variables after the step, the FINAL (when it ended there), its sub-calls and
    timings (``offset_s``: when it began, counted from the execution's first turn)."""

    number: int
    dom_id: str
    response: TextView | None
    code: str | None
    stdout: TextView | None
    observation: TextView | None
    error: TextView | None
    variables: list[str]
    final: dict[str, Any] | None
    prompt: list[dict[str, str]]
    cached: bool
    root_model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    root_s: float
    step_s: float
    total_s: float
    offset_s: float
    timed_out: bool
    spans_read: int
    sandbox_warnings: list[str]
    subcalls: list[SubcallView]


@dataclass(frozen=True)
class BudgetRow:
    """A budget: its ``limit`` (None: unlimited) and what was ``spent`` (None: unknown), in
    ``unit``: ``count``, ``usd`` or ``s`` (seconds)."""

    name: str
    limit: float | int | None
    spent: float | int | None
    unit: str = "count"


@dataclass
class ExecutionView:
    """One execution of the tree (root or child) with its turns, orphan sub-calls (those of
    no stored turn) and children."""

    id: str
    dom_id: str
    parent_id: str | None
    depth: int
    status: str
    mode: str
    question: str
    root_model: str
    sub_model: str
    answer: str | None
    fields: dict[str, Any] | None
    error: str | None
    created_at: str
    finished_at: str | None
    usage: dict[str, Any]
    budgets: list[BudgetRow]
    citations: list[CitationView]
    turns: list[TurnView]
    other_subcalls: list[SubcallView]
    start_s: float
    wall_s: float
    children: list[ExecutionView] = field(default_factory=list)

    @property
    def n_subcalls(self) -> int:
        return sum(len(t.subcalls) for t in self.turns) + len(self.other_subcalls)


@dataclass
class PageView:
    """The page: the root execution (with its tree) and the tree's span in seconds."""

    root: ExecutionView
    span_s: float

    def executions(self) -> Iterator[ExecutionView]:
        """Every execution of the tree, depth first (root first)."""
        stack = [self.root]
        while stack:
            ex = stack.pop()
            yield ex
            stack.extend(reversed(ex.children))


def dom_id(execution_id: str) -> str:
    """The page's HTML id of an execution's section (``ex-`` + the id, made safe)."""
    return "ex-" + re.sub(r"[^A-Za-z0-9_-]", "_", execution_id)


def citation_key(c: Mapping[str, Any]) -> tuple[str, int, int]:
    """The key of a citation in the windows mapping: ``(doc_id, start, end)``."""
    start, end = c.get("start"), c.get("end")
    return (
        str(c.get("doc_id", "")),
        start if isinstance(start, int) else -1,
        end if isinstance(end, int) else -1,
    )
