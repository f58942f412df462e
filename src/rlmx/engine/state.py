"""The state of an execution tree and of one execution in it, shared by the loop
(:mod:`.orchestrator`), runtime mode (:mod:`.runtime`), resume (:mod:`.resume`) and the
tool resolver: options, outcomes, the tree (budget tracker, wrapped LMs, events,
cancellation), resume points and the per-execution span log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ExecutionCancelled
from ..lm.base import LMClient, Message
from ..sandbox.base import REPL, ContextSpec, SpanEvent
from ..store.base import ExecutionRecord
from ..types import Budgets, SpanRef, Status
from .budget import BudgetTracker
from .citations import Span
from .observers import notify

if TYPE_CHECKING:
    from .orchestrator import Engine
    from .resolver import ToolResolverImpl
    from .schema import OutputSchema
    from .tools import ToolRegistry

__all__ = [
    "TASK_CANCELLED",
    "EngineOptions",
    "EventSink",
    "ExecutionOutcome",
    "ExecutionState",
    "ReplFactory",
    "ResumePoint",
    "Resumer",
    "Tree",
]

TASK_CANCELLED = "cancelled"
"""The ``error`` an execution is recorded with when its task was cancelled (a worker stopping,
a lost job): not an end the execution chose, so a worker giving the job back undoes it."""

EventSink = Callable[[str, dict[str, Any]], None]
ReplFactory = Callable[[ContextSpec, "EngineOptions", list[str] | None], REPL]


@dataclass
class EngineOptions:
    """Knobs of the loop. Units: seconds, characters."""

    budgets: Budgets = field(default_factory=Budgets)
    step_timeout_s: float = 120.0
    output_max_chars: int = 20_000
    repl_output_cap_chars: int = 2_000_000
    sub_lm_chars: int = 500_000
    """What one sub-LM prompt may carry, in characters (the prompt says so; its chunk size
    for aggregation is a quarter of it): ``RLM`` sets it from the sub-LM's window
    (:func:`rlmx.lm.windows.prompt_chars`)."""
    compaction_threshold: float | None = 0.8
    """Compact the root conversation past this fraction of the root model's window
    (:mod:`rlmx.engine.compaction`); None: never."""
    root_window_tokens: int | None = None
    """The root model's input window in tokens; None: the known window of its spec
    (:func:`rlmx.lm.windows.known_window`), and no compaction when it is unknown."""
    tools: ToolRegistry | None = None
    """Custom tools model code may call (:mod:`.tools`; None: none)."""


@dataclass
class ExecutionOutcome:
    execution_id: str
    status: Status
    text: str
    citations: list[SpanRef]
    fields: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class Tree:
    """Shared state of one execution tree: budget tracker and wrapped LMs."""

    engine: Engine
    budgets: Budgets
    tracker: BudgetTracker
    root_lm: LMClient
    sub_lm: LMClient
    on_event: EventSink | None = None
    should_stop: Callable[[], bool] | None = None
    """Asked at every turn boundary; True ends the execution as CANCELLED (service hook)."""

    def emit(self, event: str, /, content: dict[str, Any] | None = None, **data: Any) -> None:
        """Send an event to ``on_event`` and to the process's observers
        (:mod:`.observers`; only they get ``content``, the text an LM saw and answered)."""
        if self.on_event is not None:
            self.on_event(event, data)
        notify(event, data, content)

    def check_stop(self) -> None:
        """Raise :class:`ExecutionCancelled` when cancellation was asked for."""
        if self.should_stop is not None and self.should_stop():
            raise ExecutionCancelled("cancelled at a turn boundary, as requested")

    async def acheck_stop(self) -> None:
        """:meth:`check_stop` from async code: ``should_stop`` may read the store (the
        service's), so it runs in a thread and the event loop never waits for it."""
        if self.should_stop is not None:
            await asyncio.to_thread(self.check_stop)


@dataclass
class ResumePoint:
    """Where a resumed execution goes on: the root messages so far and the next turn; or
    ``outcome`` when its committed turns already ended it."""

    messages: list[Message]
    next_turn: int
    outcome: ExecutionOutcome | None = None


class Resumer(Protocol):
    """Restores an execution from its committed turns (:mod:`rlmx.engine.resume`): the
    record to go on with, and ``restore`` brings the REPL back to the state after the last
    committed turn (replay today; a snapshot restore later) and says where to go on."""

    record: ExecutionRecord
    last_turn: int
    """The last committed turn (0: none): a REPL snapshot of that turn can be restored."""

    async def restore(
        self, engine: Engine, st: ExecutionState, repl: REPL, resolver: ToolResolverImpl, schema: OutputSchema | None
    ) -> ResumePoint: ...


@dataclass
class ExecutionState:
    tree: Tree
    execution_id: str
    root_id: str
    corpus_id: str
    spec: ContextSpec
    depth: int
    turn: int = 0
    events: dict[tuple[str, str, int, int], SpanEvent] = field(default_factory=dict)
    restored_turn: int = 0
    """The turn whose REPL snapshot the REPL was restored from on resume (0: none)."""
    ranges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for d in self.spec.docs:
            self.ranges.setdefault(d.doc_id, []).append(d.window or (0, d.length))
            self.names.setdefault(d.doc_id, d.name)

    def clip(self, doc_id: str, start: int, end: int) -> Span | None:
        """The part of ``[start, end)`` this execution's context may see, or None.

        Span logs and FINAL citations come from the sandbox, which model code controls: only
        documents (and windows) of the execution's own context are ever read or cited."""
        for lo, hi in self.ranges.get(doc_id, ()):
            a, b = max(start, lo), min(end, hi)
            if a < b:
                return Span(doc_id, a, b)
        return None

    def log_spans(self, events: list[SpanEvent]) -> None:
        for ev in events:
            if self.clip(ev.doc_id, ev.start, ev.end) != Span(ev.doc_id, ev.start, ev.end):
                continue  # outside the context: forged or stale, never a citation
            key = (ev.kind, ev.doc_id, ev.start, ev.end)
            old = self.events.get(key)
            if old is None:
                self.events[key] = ev
            else:
                old.subcalls = sorted(set(old.subcalls) | set(ev.subcalls))
