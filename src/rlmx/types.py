"""Core value types shared by every layer: spans, SpanRefs, usage, budgets, answers.

Offsets are code-point offsets into a Document's canonical text (UTF-8, NFC, ``\\n``
newlines), end exclusive. Checksums follow DESIGN.md:
``"sha256:" + hex(sha256(text[start:end].encode("utf-8")))``.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Answer",
    "Budgets",
    "SpanRef",
    "Status",
    "Usage",
    "span_checksum",
]


def span_checksum(text: str) -> str:
    """Return ``"sha256:<hex>"`` of ``text`` encoded as UTF-8 (DESIGN.md, Span/SpanRef)."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


class Status(StrEnum):
    """Execution status (DESIGN.md vocabulary)."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    MAX_TURNS_EXCEEDED = "MAX_TURNS_EXCEEDED"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"


class SpanRef(BaseModel):
    """A verifiable citation: a ``[start, end)`` code-point range of a Document's canonical text.

    ``checksum`` is ``span_checksum(canonical_text[start:end])``; ``text`` is that slice.
    """

    model_config = ConfigDict(frozen=True)

    doc_id: str
    doc_name: str = ""
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    checksum: str
    text: str = ""


class Usage(BaseModel):
    """What an execution tree spent.

    Tokens are provider-reported (estimated at ≈ 4 characters a token only when a provider
    reports none); ``cost_usd`` is None when any call used a model with no known price
    (never silently zero); ``wall_seconds`` is elapsed wall-clock time; ``cache_errors``
    counts LM calls whose LLM-cache lookup or store failed (the call itself went on).
    """

    turns: int = 0
    root_calls: int = 0
    sub_calls: int = 0
    cached_calls: int = 0
    cache_errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    wall_seconds: float = 0.0
    max_depth_reached: int = 0
    tool_calls: int = 0
    """Calls of custom tools that ran (docs/repl.md); not counted in ``sub_calls``."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Budgets(BaseModel):
    """Hard limits for one execution tree (the root and every child, in parallel included).

    ``max_turns`` applies to each execution (root or child) separately; the others hold for
    the whole tree. ``None`` means unlimited. Units: tokens (input + output), USD, seconds.
    ``max_tool_calls`` counts custom tool calls. ``max_depth`` is the deepest child depth
    ``rlm_query`` may start (root = 0); at that depth ``rlm_query`` degrades to a plain
    sub-LM call (paper §2). Unknown fields are refused (a misspelt limit must not silently mean "unlimited").
    """

    model_config = ConfigDict(extra="forbid")

    max_turns: int = Field(default=30, ge=1)
    max_sub_calls: int | None = Field(default=None, ge=0)
    max_total_tokens: int | None = Field(default=None, ge=0)
    max_cost_usd: float | None = Field(default=None, ge=0)
    max_wall_seconds: float | None = Field(default=None, gt=0)
    max_depth: int = Field(default=1, ge=0)
    max_tool_calls: int | None = Field(default=None, ge=0)
    """Calls of custom tools (``RLM(tools=...)``, docs/repl.md) in the whole tree; not sub-calls."""


class Answer(BaseModel):
    """The result of ``RLM.ask``.

    ``text``: the final answer (or best answer so far when the status is not COMPLETED);
    ``fields``: the validated ``SUBMIT`` fields when an output schema was given;
    ``cost_usd``: USD, None when unknown.
    """

    execution_id: str
    status: Status
    text: str
    citations: list[SpanRef] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = None
    fields: dict[str, Any] | None = None
    error: str | None = None
