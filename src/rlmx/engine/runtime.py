"""Runtime mode: the client is the root LM and submits each step's code (issue 4).

A :class:`RuntimeExecution` keeps one REPL alive between the client's requests. Each step
is a turn: it runs in the REPL, is persisted (``add_turn``, with ``"mode": "runtime"``)
before the next can start, and its span log feeds citations exactly as in answerer mode.
``FINAL``/``SUBMIT`` in a step ends the execution (COMPLETED, citations derived from the
span log). After the ``max_turns``-th step without one, the step answer carries the closing
request (``final_request``, as answerer mode sends its root LM) and one more, closing step
is taken: its ``FINAL`` is the answer, and the execution ends MAX_TURNS_EXCEEDED either way
(with no answer when it gave none: a raw output is never an answer). A spent budget ends it
BUDGET_EXCEEDED.

Sub-calls inside a step (``llm_query``, ``llm_query_batched``, ``rlm_query``) are tool
requests. With ``client_tools=False`` the server resolves them at once with its models
(cache → budget → LM client, the engine's resolver). With ``client_tools=True`` each one
waits for the client: :meth:`step` returns as soon as the step finishes **or** has requests
waiting (``waiting: true`` and ``tool_requests: [{id, kind, prompt | prompts, subcall_ids}]``);
the client then calls :meth:`resolve` with its own results (``{id: str}``, a list of str for
a batch, or an error) and/or asks the server to resolve some (``server_ids``), which lets the
step go on; ``resolve`` answers like ``step``. Time spent waiting for tool results does not
count against the step's wall-clock limit. Custom tools (``tool`` requests, docs/repl.md) are
always resolved by the server, at once: they are the operator's functions, never the client's.

Each committed step stores the REPL's sealed snapshot. On another server (or after a restart),
:meth:`open` with ``restore=True`` brings the REPL back from the snapshot of the last
committed step, else by replaying the committed steps (:mod:`rlmx.engine.resume`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import Any

from ..errors import RlmxError, SchemaError
from ..sandbox.base import REPL, ContextSpec, FinalSignal, StepResult, ToolRequest
from ..store.base import ExecutionRecord, utcnow
from ..types import Status
from .blocks import step_code
from .observation import final_request
from .orchestrator import Engine, ExecutionOutcome, ExecutionState, Tree
from .prompting import PROMPT_DOCS, context_summary, first_user_message, root_system_prompt
from .resolver import ToolResolverImpl
from .resume import ReplayResolver, abandon_in_flight, replay_turns, restore_logs, stored_usage
from .runtime_tools import SERVER, PendingTools, RuntimeConflict, ToolResultError
from .runtime_view import step_answer
from .schema import OutputSchema
from .tools import WithReplTools

__all__ = ["RuntimeConflict", "RuntimeExecution", "ToolResultError"]

SETTLE_S = 0.05
"""After a tool request arrives, how long to wait for more (threads, batches) before
answering the client."""


class RuntimeExecution:
    """One runtime-mode execution over ``engine``'s store (see the module doc)."""

    def __init__(
        self,
        engine: Engine,
        tree: Tree,
        *,
        execution_id: str,
        spec: ContextSpec,
        corpus_id: str,
        question: str,
        schema: OutputSchema | None = None,
        client_tools: bool = False,
    ):
        self.engine = engine
        self.tree = tree
        self.store = engine.store
        self.execution_id = execution_id
        self.spec = spec
        self.corpus_id = corpus_id
        self.question = question
        self.schema = schema
        self.client_tools = client_tools
        self.state = ExecutionState(tree, execution_id, execution_id, corpus_id, spec, 0)
        self.resolver = ToolResolverImpl(self.state)
        self.repl: REPL | None = None
        self.status = Status.RUNNING
        self.turn = 0
        self.last_used = time.monotonic()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[StepResult] | None = None
        self._code = ""
        self._t0 = 0.0
        self.tools = PendingTools()
        self.restored: str | None = None
        """How :meth:`open` brought the REPL back: ``"snapshot"``, ``"replay"`` or None (new)."""

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self, *, restore: bool = False) -> None:
        """Start the REPL. ``restore``: the execution exists (another server, or this one
        before a restart, served its earlier steps): the REPL comes back from the sealed
        snapshot of its last committed step when the store has it (no code runs again),
        else by replaying the committed steps. Store I/O runs in threads."""
        self.loop = asyncio.get_running_loop()
        fields = self.schema.field_names if self.schema else None
        meta = self.store.meta
        if not restore:
            self.repl = self.engine._new_repl(self.spec, fields)  # sealed with the store's shared key
            await self.repl.start()
            rec = ExecutionRecord(
                execution_id=self.execution_id,
                corpus_id=self.corpus_id,
                question=self.question,
                mode="runtime",
                root_id=self.execution_id,
                root_model="client",
                sub_model="client" if self.client_tools else self.tree.sub_lm.spec,
                budgets=self.tree.budgets.model_dump(),
            )
            await asyncio.to_thread(meta.put_execution, rec)
            self.tree.emit("execution_started", execution_id=self.execution_id, depth=0, question=self.question)
            return
        turns = await asyncio.to_thread(meta.get_turns, self.execution_id)
        last = int(turns[-1]["turn"]) if turns else 0
        snapshot = await asyncio.to_thread(self.engine._load_snapshot, self.execution_id, last) if last else None
        self.repl = self.engine._new_repl(self.spec, fields, snapshot)
        await self.repl.start()
        await asyncio.to_thread(abandon_in_flight, meta, self.execution_id, last)
        usage = await asyncio.to_thread(stored_usage, meta, self.execution_id)
        tr = self.tree.tracker
        tr.turns, tr.sub_calls, tr.root_calls = usage.turns, usage.sub_calls, usage.root_calls
        tr.tool_calls = usage.tool_calls
        tr.input_tokens, tr.output_tokens, tr.cost_usd = usage.input_tokens, usage.output_tokens, usage.cost_usd
        subcalls = await asyncio.to_thread(meta.get_subcalls, self.execution_id)
        replay = ReplayResolver(self.resolver, {str(s.get("id")): s for s in subcalls}, meta)
        if snapshot is not None and getattr(self.repl, "snapshot", None) is not None:
            restore_logs(self.state, turns, replay)
            self.restored = "snapshot"
        else:
            await replay_turns(self.state, self.repl, turns, replay)
            self.restored = "replay"
        self.turn = len(turns)

    async def close(self) -> None:
        """Stop the REPL (the execution's record is left as it is)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        self._task = None
        if self.repl is not None:
            await self.repl.close()
            self.repl = None

    def abandon(self) -> None:
        """Kill the REPL process without the event loop it was started in (that loop is
        gone); the execution is restored from its committed steps when used again."""
        pid = getattr(self.repl, "pid", None)
        if pid:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        self.repl = None

    async def cancel(self, reason: str) -> None:
        """End the execution as CANCELLED now (a waiting or running step is stopped)."""
        if self.status is Status.RUNNING:
            await asyncio.to_thread(
                self.finish, ExecutionOutcome(self.execution_id, Status.CANCELLED, "", [], error=reason)
            )
        await self.close()

    def prompt(self) -> str:
        """The root system prompt answerer mode would send for this corpus, budgets and
        output schema (the client plays the root LM)."""
        return root_system_prompt(self.spec, self.engine.options, self.tree.budgets, 0, self.schema)

    def first_message(self) -> str:
        """The first user message answerer mode sends its root LM (the question)."""
        return first_user_message(self.question)

    def context(self, offset: int = 0, limit: int = PROMPT_DOCS) -> dict[str, Any]:
        """Document count, total characters, and a page of ``{index, name, length}``."""
        return context_summary(self.spec, offset, limit)

    @property
    def busy(self) -> bool:
        return self._task is not None

    # -- the client's requests ---------------------------------------------------------------
    async def step(self, code: str) -> dict[str, Any]:
        """Run ``code`` (bare, or a response holding a fenced ``repl`` block) as the next step;
        returns the step answer (see the module doc). Raises :class:`RuntimeConflict` when
        the execution is over or a step is waiting."""
        code = step_code(code)
        async with self._lock:
            self.last_used = time.monotonic()
            if self.status is not Status.RUNNING:
                raise RuntimeConflict(f"the execution is {self.status.value}; start a new one")
            if self._task is not None:
                raise RuntimeConflict(
                    "a step is waiting for tool results: answer them with POST /v1/executions/{id}/tools/resolve"
                )
            assert self.repl is not None
            await self.tree.acheck_stop()
            self.turn += 1  # max_turns + 1: the closing step (see _commit)
            self.state.turn = self.turn
            self.tree.tracker.turns = min(self.turn, self.tree.budgets.max_turns)
            self._code, self._t0 = code, time.monotonic()
            self.tree.emit("turn_started", execution_id=self.execution_id, depth=0, turn=self.turn)
            self._task = asyncio.create_task(
                self.repl.run(code, turn=self.turn, resolver=WithReplTools(self._dispatch, self.resolver.repl_tools))
            )
            return await self._settle()

    async def resolve(self, results: dict[str, Any], server_ids: list[str]) -> dict[str, Any]:
        """Supply results of waiting tool requests (``{id: value}``; a value is a str, a list
        of str for a batch, or ``{"error": str}``) and/or let the server resolve those in
        ``server_ids`` (``["*"]``: every waiting one not in ``results``). Raises
        :class:`ToolResultError` for an unknown id or a malformed value, and
        :class:`RuntimeConflict` when no step is waiting."""
        async with self._lock:
            self.last_used = time.monotonic()
            if self._task is None:
                raise RuntimeConflict("no step is waiting for tool results")
            self.tools.answer(results, server_ids)
            return await self._settle()

    def pending_requests(self) -> list[dict[str, Any]]:
        """The tool requests waiting for the client (see :meth:`PendingTools.listing`)."""
        return self.tools.listing()

    # -- internals ---------------------------------------------------------------------------
    async def _dispatch(self, req: ToolRequest) -> Any:
        """The REPL's resolver: the server's (``client_tools`` off), else wait for the client.
        ``search`` (``context.search``) is always the server's, at once: it reads the
        store's index for this execution's context only, and is never a pending request."""
        if not self.client_tools or req.kind in ("search", "tool"):  # custom tools: always the server's
            return await self.resolver(req)
        p = req.payload
        if p.get("model"):
            raise ValueError("choosing a model per call is not supported; call without model=")
        n = len(p.get("prompts") or []) if req.kind == "llm_query_batched" else 1
        self.tree.tracker.reserve_sub_calls(n)
        t0 = time.monotonic()
        value = await self.tools.wait(req)
        if value is SERVER:
            self.tree.tracker.sub_calls -= n  # the server's resolver reserves them itself
            return await self.resolver(req)
        seconds = time.monotonic() - t0
        if req.kind == "llm_query_batched":
            ids = [str(i) for i in p.get("subcall_ids") or []]
            for sid, prompt, text in zip(ids, p.get("prompts") or [], value, strict=False):
                await self.resolver._record(sid, req.kind, str(prompt), text, seconds=seconds, resolved_by="client")
        else:
            await self.resolver._record(
                str(p.get("subcall_id", req.id)),
                req.kind,
                str(p.get("prompt", "")),
                value,
                seconds=seconds,
                resolved_by="client",
            )
        return value

    async def _settle(self) -> dict[str, Any]:
        """Wait until the step finishes, or has tool requests waiting for the client."""
        task = self._task
        assert task is not None
        while True:
            self.tools.changed.clear()
            if not self.pending_requests():
                waiter = asyncio.ensure_future(self.tools.changed.wait())
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
            if task.done():
                break
            # requests are waiting: give others raised at the same time a moment to arrive
            await asyncio.wait({task}, timeout=SETTLE_S)
            if task.done():
                break
            if self.pending_requests():
                return self._view(None, waiting=True)
        self._task = None
        if task.cancelled():  # cancelled by the client meanwhile
            return self._view(None, waiting=False)
        try:
            step = task.result()
        except RlmxError as e:  # the REPL could not be restarted
            step = StepResult(error=f"{type(e).__name__}: {e}")
        return await self._commit(step)

    async def _commit(self, step: StepResult) -> dict[str, Any]:
        st = self.state
        st.log_spans(step.span_log)
        final, error, fields = step.final, step.error, None
        if final is not None and self.schema is not None:
            try:
                fields = self.schema.validate(final)
            except SchemaError as e:
                error, final = f"SchemaError: {e}", None
        max_turns = self.tree.budgets.max_turns
        closing = self.turn > max_turns
        record = {
            "turn": self.turn,
            "depth": 0,
            "mode": "runtime",
            **({"final_request": final_request(max_turns=max_turns, question=self.question)} if closing else {}),
            "code": self._code,
            "stdout": step.stdout,
            "error": error,
            "timed_out": step.timed_out,
            "final": final.model_dump() if final else None,
            "span_log": [e.model_dump() for e in step.span_log],
            "timings": {"step_s": round(step.duration_s, 4), "total_s": round(time.monotonic() - self._t0, 4)},
        }
        assert self.repl is not None
        # the turn (commit point), then the REPL's sealed snapshot, which any server restores
        await asyncio.to_thread(self.engine._commit_turn, self.execution_id, self.turn, record, self.repl)
        self.tree.emit(
            "turn_finished",
            execution_id=self.execution_id,
            depth=0,
            turn=self.turn,
            root_s=0.0,
            step_s=step.duration_s,
            error=bool(error),
        )
        outcome: ExecutionOutcome | None = None
        if self.tree.tracker.exceeded is not None:
            outcome = ExecutionOutcome(
                self.execution_id,
                Status.BUDGET_EXCEEDED,
                step.stdout[-2000:],
                [],
                error=str(self.tree.tracker.exceeded),
            )
        elif final is not None:
            status = Status.MAX_TURNS_EXCEEDED if closing else Status.COMPLETED
            outcome = self.engine._finish(st, self.resolver, final, status, fields)
        elif closing:  # the closing step gave no answer: none is made up from its output
            outcome = ExecutionOutcome(
                self.execution_id,
                Status.MAX_TURNS_EXCEEDED,
                "",
                [],
                error=f"the turn budget of {max_turns} steps is spent and the closing step did not call FINAL",
            )
        if outcome is not None:
            await asyncio.to_thread(self.finish, outcome)
        return self._view(step, waiting=False, error=error, final=final, outcome=outcome)

    def use_store(self, store: Any) -> None:
        """Write through ``store`` from now on (a server's fenced view for one step)."""
        self.store = store
        self.engine.store = store

    def finish(self, outcome: ExecutionOutcome) -> None:
        """Record the end of the execution (the REPL is closed by :meth:`close`). Blocking
        I/O: async code calls it in a thread."""
        meta = self.store.meta
        rec = meta.get_execution(self.execution_id)
        rec.status = outcome.status.value
        rec.answer = outcome.text
        rec.citations = [c.model_dump() for c in outcome.citations]
        rec.fields = outcome.fields
        rec.error = outcome.error
        rec.usage = self.tree.tracker.usage().model_dump()
        rec.finished_at = utcnow()
        meta.put_execution(rec)
        self.status = outcome.status
        self.tree.emit("execution_finished", execution_id=self.execution_id, depth=0, status=outcome.status.value)

    def _view(
        self,
        step: StepResult | None,
        *,
        waiting: bool,
        error: str | None = None,
        final: FinalSignal | None = None,
        outcome: ExecutionOutcome | None = None,
    ) -> dict[str, Any]:
        return step_answer(self, step, waiting=waiting, error=error, final=final, outcome=outcome)
