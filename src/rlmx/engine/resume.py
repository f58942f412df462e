"""Resume an execution from its committed turns (DESIGN.md invariant 4).

Every turn is persisted before the next begins, so a stopped worker loses at most the turn
in flight. :func:`prepare_resume` readies an execution to go on, on any worker:

1. the records of the turn in flight are set aside — its sub-call records are marked
   ``abandoned`` (kept: what they cost was spent; never a replay's answer), and every
   still-RUNNING execution of the tree under it (children, their children, ...) is marked
   CANCELLED as abandoned — that turn is redone;
2. the budget tracker is restored from what the tree already spent (:func:`stored_usage`,
   the tokens and USD of abandoned sub-calls included);
3. :class:`ReplayResumer` rebuilds the root LM's messages from the committed turns (turn 1's
   prompt, then each turn's response and observation) and brings a fresh REPL back to the
   state after the last committed turn by **replaying** each committed turn's code. Sub-calls
   made during the replay are answered from the recorded sub-calls, by sub-call id (the
   REPL numbers them ``t{turn}.{n}`` deterministically), so the replay pays nothing and the
   provider sees no duplicate request; a sub-call with no record (it failed, or the code is
   not deterministic) goes to the live resolver, whose LLM cache answers repeated requests.

The redone turn's root call is usually an LLM-cache hit too (same messages). When the
engine restored the REPL from its stored snapshot of the last committed turn
(``ExecutionState.restored_turn``), step 3 runs no code: :func:`restore_logs` reads the span
logs and sub-call answers back from the trace instead. Replay is the fallback when no usable
snapshot exists.
Limits: code whose effect depends on time, randomness or the outside world replays
differently; a turn that hit the step timeout is not replayed (its REPL had been restarted,
so its variables were lost then too).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError
from ..sandbox.base import REPL, FinalSignal, SpanEvent, ToolRequest
from ..store.base import ExecutionRecord, MetadataStore, utcnow
from ..types import SpanRef, Status, Usage
from .budget import BudgetTracker
from .orchestrator import Engine, ExecutionState, ResumePoint
from .resolver import ToolResolverImpl
from .schema import OutputSchema

if TYPE_CHECKING:
    from ..lm.base import Message

__all__ = [
    "ReplayResolver",
    "ReplayResumer",
    "abandon_in_flight",
    "prepare_resume",
    "replay_turns",
    "restore_logs",
    "stored_usage",
]


def _tree_ids(meta: MetadataStore, execution_id: str, max_depth: int = 16) -> list[str]:
    ids, frontier = [execution_id], [execution_id]
    for _ in range(max_depth):
        nxt = [c.execution_id for p in frontier for c in meta.list_executions(parent_id=p, limit=10_000)]
        if not nxt:
            break
        ids += nxt
        frontier = nxt
    return ids


def stored_usage(meta: MetadataStore, execution_id: str) -> Usage:
    """What the tree rooted at ``execution_id`` spent, from its stored turns and sub-calls:
    root calls (one per turn), sub-calls (one per record; a batch item or a child counts
    one), tokens, USD (None when any paid call had no price), cache hits, and wall seconds
    of the root's turns. An abandoned sub-call record (of a turn that was redone) is not
    counted as a sub-call, but its tokens and USD are: they were paid. Used to restore a
    budget tracker and to report a running execution's consumption."""
    u = Usage()
    cost: float | None = 0.0

    def charge(call: dict[str, Any]) -> None:  # a root call (turn) or a sub-call record
        nonlocal cost
        u.input_tokens += int(call.get("input_tokens") or 0)
        u.output_tokens += int(call.get("output_tokens") or 0)
        if call.get("cached"):
            u.cached_calls += 1
        elif "cost_usd" in call:
            c = call.get("cost_usd")
            cost = None if c is None or cost is None else cost + float(c)

    root_turns = 0
    wall = 0.0
    for i, eid in enumerate(_tree_ids(meta, execution_id)):
        for t in meta.get_turns(eid):
            if i == 0:
                if not t.get("final_request"):
                    root_turns += 1
                timings = t.get("timings") or {}
                wall += float(timings.get("total_s") or timings.get("step_s") or 0.0)
            if t.get("mode") != "runtime":  # in runtime mode the client was the root: no root call
                u.root_calls += 1
                charge(t)
            if t.get("compaction"):  # the summary call of a compaction (engine/compaction.py)
                charge(t["compaction"])
        for s in meta.get_subcalls(eid):
            if s.get("abandoned"):
                u.input_tokens += int(s.get("input_tokens") or 0)
                u.output_tokens += int(s.get("output_tokens") or 0)
                if not s.get("cached") and "cost_usd" in s:
                    c = s.get("cost_usd")
                    cost = None if c is None or cost is None else cost + float(c)
                continue
            if s.get("kind") == "tool":  # a custom tool call: not a sub-call, no tokens
                u.tool_calls += 1
                continue
            u.sub_calls += 1
            charge(s)
    u.turns = root_turns
    u.cost_usd = None if cost is None else round(cost, 8)
    u.wall_seconds = round(wall, 3)
    return u


def _restore_tracker(tracker: BudgetTracker, usage: Usage) -> None:
    tracker.turns = usage.turns
    tracker.root_calls = usage.root_calls
    tracker.sub_calls = usage.sub_calls
    tracker.tool_calls = usage.tool_calls
    tracker.cached_calls = usage.cached_calls
    tracker.input_tokens = usage.input_tokens
    tracker.output_tokens = usage.output_tokens
    tracker.cost_usd = usage.cost_usd
    tracker.started = time.monotonic() - usage.wall_seconds


def abandon_in_flight(meta: MetadataStore, execution_id: str, last_turn: int) -> None:
    """Set aside what the turn in flight left: the sub-call records of turns after
    ``last_turn`` are marked abandoned (kept for what they cost), and every still-RUNNING
    execution below ``execution_id`` — children and their descendants, at any depth — is
    marked CANCELLED (the turn that started them is redone)."""
    meta.abandon_subcalls_after(execution_id, last_turn)
    for eid in _tree_ids(meta, execution_id)[1:]:
        child = meta.get_execution(eid)
        if child.status == Status.RUNNING.value:
            child.status = Status.CANCELLED.value
            child.error = "abandoned: the worker running its parent stopped; the parent's turn was redone"
            child.finished_at = utcnow()
            meta.put_execution(child)


def prepare_resume(meta: MetadataStore, execution_id: str, tracker: BudgetTracker) -> ReplayResumer | None:
    """Ready ``execution_id`` to go on from its committed turns (see the module doc).
    Returns None when nothing was committed (start afresh under the same id)."""
    try:
        rec = meta.get_execution(execution_id)
    except NotFoundError:
        return None
    turns = meta.get_turns(execution_id)
    abandon_in_flight(meta, execution_id, turns[-1]["turn"] if turns else 0)
    if not turns or not turns[0].get("prompt"):
        return None
    _restore_tracker(tracker, stored_usage(meta, execution_id))
    return ReplayResumer(rec, turns, meta)


class ReplayResolver:
    """Answers a replayed step's tool requests from the recorded sub-calls (by id), filling
    the live resolver's ``responses`` and ``child_citations`` (citations need them); falls
    back to the live resolver for a request with no record. Abandoned records (of a turn
    that was redone) are never answers."""

    def __init__(self, live: Any, recorded: dict[str, dict[str, Any]], meta: MetadataStore):
        self.live = live
        self.recorded = {k: r for k, r in recorded.items() if not r.get("abandoned")}
        self.meta = meta
        self.replayed = 0
        self.repl_tools = getattr(live, "repl_tools", None)  # the custom tools' stubs (steps.py)

    def _answer(self, sid: str) -> str:
        r = self.recorded[sid]
        text = str(r.get("response", ""))
        responses = getattr(self.live, "responses", None)
        if isinstance(responses, dict):
            responses[sid] = text
        child_id = r.get("child_id")
        cites = getattr(self.live, "child_citations", None)
        if child_id and isinstance(cites, dict):
            try:
                cites[sid] = [SpanRef.model_validate(c) for c in self.meta.get_execution(child_id).citations]
            except NotFoundError:
                pass
        self.replayed += 1
        return text

    async def __call__(self, req: ToolRequest) -> Any:
        p = req.payload
        if req.kind == "llm_query_batched":
            ids = [str(i) for i in p.get("subcall_ids") or []]
            if ids and all(i in self.recorded for i in ids):
                return [self._answer(i) for i in ids]
        elif req.kind == "tool" and str(p.get("subcall_id")) in self.recorded:
            r = self.recorded[str(p["subcall_id"])]  # a custom tool is never called twice
            self.replayed += 1
            if r.get("error"):
                raise RuntimeError(str(r["error"]))
            return json.loads(str(r.get("response") or "null"))
        elif str(p.get("subcall_id")) in self.recorded:
            r = self.recorded[str(p["subcall_id"])]
            if req.kind == "rlm_query" and p.get("failed_raises") and r.get("error"):
                self.replayed += 1
                raise RuntimeError(str(r["error"]))  # rlm_query_batched's failed child, again
            return self._answer(str(p["subcall_id"]))
        return await self.live(req)


async def replay_turns(st: ExecutionState, repl: REPL, turns: list[dict[str, Any]], resolver: ReplayResolver) -> None:
    """Run the committed turns' code again in ``repl`` (span logs go to ``st``)."""
    for t in turns:
        st.turn = int(t["turn"])
        code = t.get("code")
        if t.get("timed_out"):
            await repl.close()  # its REPL was restarted then: variables were lost
            await repl.start()
        elif code:
            step = await repl.run(str(code), turn=st.turn, resolver=resolver)
            st.log_spans(step.span_log)


def restore_logs(st: ExecutionState, turns: list[dict[str, Any]], recorded: ReplayResolver) -> None:
    """Bring back what citations need without running code: each committed turn's span log
    (into ``st``) and every recorded sub-call answer (into the live resolver)."""
    for t in turns:
        st.turn = int(t["turn"])
        st.log_spans([SpanEvent.model_validate(e) for e in t.get("span_log") or []])
    for sid in recorded.recorded:
        recorded._answer(sid)


class ReplayResumer:
    """The replay :class:`~rlmx.engine.orchestrator.Resumer` (see the module doc)."""

    def __init__(self, record: ExecutionRecord, turns: list[dict[str, Any]], meta: MetadataStore):
        self.record = record
        self.turns = turns
        self.meta = meta
        self.last_turn = int(turns[-1]["turn"]) if turns else 0

    async def restore(
        self,
        engine: Engine,
        st: ExecutionState,
        repl: REPL,
        resolver: ToolResolverImpl,
        schema: OutputSchema | None,
    ) -> ResumePoint:
        subcalls = self.meta.get_subcalls(st.execution_id)
        recorded = {str(s.get("id")): s for s in subcalls if not s.get("abandoned")}
        replay = ReplayResolver(resolver, recorded, self.meta)
        if st.restored_turn and st.restored_turn == self.last_turn:
            # The REPL came back from its snapshot of the last committed turn: no code runs
            # again; the span logs and sub-call answers that citations need come from the trace.
            restore_logs(st, self.turns, replay)
            how = "snapshot"
        else:
            await replay_turns(st, repl, self.turns, replay)
            how = "replay"
        st.tree.emit(
            "execution_resumed", execution_id=st.execution_id, depth=st.depth, turns=len(self.turns), restored=how
        )
        last = self.turns[-1]
        if last.get("final") is not None:  # it had ended; only its record was not written
            final = FinalSignal.model_validate(last["final"])
            status = Status.MAX_TURNS_EXCEEDED if last.get("final_request") else Status.COMPLETED
            fields = schema.fields_or_none(final) if schema is not None else None
            return ResumePoint([], st.turn, engine._finish(st, resolver, final, status, fields))
        messages: list[Message] = list(self.turns[0]["prompt"])
        for t in self.turns:
            if t.get("final_request"):
                break
            messages += [
                {"role": "assistant", "content": str(t.get("response") or "")},
                {"role": "user", "content": str(t.get("observation") or "")},
            ]
        return ResumePoint(messages, st.turn + 1)
