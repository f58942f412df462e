"""Runtime executions: the client drives the REPL step by step, through any API server.

No server owns a runtime execution. Its ``jobs`` row (``kind="runtime"``) is a **step
lease**: a step takes it (``take_step_lease``, database clock, renewed by a heartbeat while
the step runs or waits for the client's tool results), so steps of one execution are
serialised across servers, and releases it when the step is committed. The REPL a server
keeps between steps is a cache: it is used only when it is at the last committed step;
otherwise (another server served the previous step, or this process restarted) the REPL is
restored from the sealed snapshot of the last committed step in the store, or by replay.
Every write of a step goes through the lease's fence, so a server that stalled past its
lease writes nothing more. A server that dies between steps loses nothing; one that dies
mid-step loses that step, and the next step waits until its lease runs out.

Limits: ``RLMX_MAX_RUNTIMES_PER_TENANT`` open runtime executions per tenant across all
servers (429 beyond), ``RLMX_MAX_RUNTIMES`` REPLs cached per server (the least recently used
idle one is stopped to make room: it is restored on its next step; 429 when every one is
busy). A step waiting for the client's tool results stays on the server that ran it: send
the results there (another server answers 409).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from ..api import RLM
from ..corpus import context_spec
from ..engine.orchestrator import Engine
from ..engine.prompting import PROMPT_DOCS
from ..engine.runtime import RuntimeConflict, RuntimeExecution, ToolResultError
from ..engine.schema import OutputSchema
from ..errors import RlmxError
from ..ids import new_id
from ..store.base import CorpusRecord, JobRecord, ServiceExecutionRecord
from ..store.sql_jobs import JobLeaseFence
from ..types import Status
from .base import TERMINAL
from .errors import BadRequest, Conflict, TooMany, Unavailable
from .executions import ExecutionsMixin
from .leases import fenced_store

__all__ = ["STEP_EXTRAS", "RuntimesMixin"]

log = logging.getLogger("rlmx.service")

STEP_EXTRAS = ("stdout", "span_log")
"""Fields of a step answer sent only when asked for (``?include=stdout,span_log``)."""


def _included(view: dict[str, Any], include: Collection[str]) -> dict[str, Any]:
    """``view`` without the extras not named in ``include`` (they are null)."""
    return {k: (None if k in STEP_EXTRAS and k not in include else v) for k, v in view.items()}


_Op = Callable[[RuntimeExecution], Awaitable[dict[str, Any]]]


@dataclass
class StepLease:
    """This server's hold on the step lease of a runtime execution: the claim number, the
    task renewing it, and whether a write found it lost."""

    attempt: int
    renewal: asyncio.Task[None]
    lost: bool = False

    def lose(self) -> None:
        self.lost = True


class RuntimesMixin(ExecutionsMixin):
    """Runtime executions, their step leases, and this server's cache of their REPLs."""

    def _runtime(self, execution_id: str, rlm: RLM, corpus: CorpusRecord, request: dict[str, Any]) -> RuntimeExecution:
        engine = Engine(self.store, rlm.options)
        tree = rlm.make_tree(engine)
        schema = OutputSchema(request["output_schema"]) if request.get("output_schema") is not None else None
        return RuntimeExecution(
            engine,
            tree,
            execution_id=execution_id,
            spec=context_spec(corpus, self.store),
            corpus_id=corpus.corpus_id,
            question=str(request.get("question") or "(runtime execution)"),
            schema=schema,
            client_tools=request.get("sub_calls") == "client",
        )

    def _open_row(self, tenant: str, eid: str, session_id: str, req: dict[str, Any]) -> None:
        """The execution's step-lease row (under the tenant's cap) and service record."""
        n = self.meta.add_runtime_job(
            JobRecord(job_id=eid, kind="runtime", ref_id=eid, state="IDLE"),
            tenant,
            self.settings.max_runtimes_per_tenant,
        )
        if n is None:
            raise TooMany(
                f"this tenant already has {self.settings.max_runtimes_per_tenant} open runtime executions (the "
                "limit is RLMX_MAX_RUNTIMES_PER_TENANT, across all servers): finish or cancel one "
                "(POST /v1/executions/{id}/cancel), then retry",
                headers={"Retry-After": "1"},
            )
        self.meta.put_service_execution(
            ServiceExecutionRecord(execution_id=eid, tenant=tenant, session_id=session_id, mode="runtime", request=req)
        )

    async def create_runtime(self, tenant: str, session_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Start a runtime execution: ``{question?, models?, budgets?, output_schema?,
        sub_calls: "server"|"client"}``; its REPL starts now, on this server."""
        session, corpus = await asyncio.to_thread(self._ready_corpus, tenant, session_id)
        self._check_schema(request.get("output_schema"))
        eid = new_id("exe")
        rlm = await asyncio.to_thread(
            self.make_rlm, request.get("models"), request.get("budgets"), tenant=tenant, on_event=self.event_sink(eid)
        )
        req = {**request, "models": self.resolve_models(request.get("models"))}
        await self._make_room(tenant, eid)
        try:
            await asyncio.to_thread(self._open_row, tenant, eid, session.session_id, req)
            rt = await asyncio.to_thread(self._runtime, eid, rlm, corpus, req)
            try:
                await rt.open()
            except RlmxError as e:
                rt.engine.close()
                await asyncio.to_thread(self._end_runtime_row, eid, Status.FAILED, f"the REPL could not start: {e}")
                log.error("the REPL of runtime execution %s could not start: %s", eid, e)
                raise Unavailable("the REPL could not start on this server; retry later") from None
        except BaseException:
            self._runtime_slots.pop(eid, None)
            raise
        self.runtimes[eid] = rt
        return {
            "execution_id": eid,
            "status": Status.RUNNING.value,
            "sub_calls": "client" if rt.client_tools else "server",
            "prompt": rt.prompt(),
            "first_message": rt.first_message(),
            "context": rt.context(),
        }

    async def runtime_prompt(
        self, tenant: str, execution_id: str, offset: int = 0, limit: int = PROMPT_DOCS
    ) -> dict[str, Any]:
        """A runtime execution's root system prompt (as at its creation) and a page of its
        context's documents (``offset``, ``limit``)."""
        return await asyncio.to_thread(self._runtime_prompt, tenant, execution_id, offset, limit)

    def _runtime_prompt(self, tenant: str, eid: str, offset: int, limit: int) -> dict[str, Any]:
        sx, rec = self.owned_execution(tenant, eid)
        if sx.mode != "runtime":
            raise Conflict(
                f"execution {eid!r} is an answerer execution: the prompt its root LM received is in "
                "its trace (GET /v1/executions/{id}/trace, turn 1)"
            )
        rt = self.runtimes.get(eid)
        if rt is not None:
            return {
                "execution_id": eid,
                "prompt": rt.prompt(),
                "first_message": rt.first_message(),
                "context": rt.context(offset, limit),
            }
        corpus = self.meta.get_corpus(rec.corpus_id)
        rlm = self.make_rlm(sx.request.get("models"), sx.request.get("budgets"), tenant=tenant)
        rt = self._runtime(eid, rlm, corpus, sx.request)  # not opened: no REPL starts
        try:
            return {"execution_id": eid, "prompt": rt.prompt(), "context": rt.context(offset, limit)}
        finally:
            rt.engine.close()

    def _end_runtime_row(self, eid: str, status: Status, error: str) -> None:
        self._fail(eid, status, error)
        self.meta.finish_job(eid, None, error=error)

    # -- steps --------------------------------------------------------------------------------
    async def step(self, tenant: str, execution_id: str, code: str, include: Collection[str] = ()) -> dict[str, Any]:
        """Run ``code`` (bare, or a fenced ``repl`` block) as the execution's next step, on
        this server (see the module doc). The answer carries ``observation`` (the output as
        the root LM would see it); the whole ``stdout`` and the ``span_log`` only when named
        in ``include``."""
        view = await self._serve(tenant, execution_id, lambda rt: rt.step(code), resolving=False)
        return _included(view, include)

    async def resolve_tools(
        self,
        tenant: str,
        execution_id: str,
        results: dict[str, Any],
        server_ids: list[str],
        include: Collection[str] = (),
    ) -> dict[str, Any]:
        """Answer the tool requests a step of this server waits on (answers like :meth:`step`)."""
        view = await self._serve(tenant, execution_id, lambda rt: rt.resolve(results, server_ids), resolving=True)
        return _included(view, include)

    async def _serve(self, tenant: str, eid: str, op: _Op, *, resolving: bool) -> dict[str, Any]:
        sx, rec = await asyncio.to_thread(self.owned_execution, tenant, eid)
        if sx.mode != "runtime":
            raise Conflict(f"execution {eid!r} is an answerer execution; steps are for runtime executions")
        if rec.status in TERMINAL:
            stale = self._forget_runtime(eid)
            if stale is not None:
                await self._dispose(stale)
            raise Conflict(f"execution {eid!r} is {rec.status}; start a new one")
        lock = self._runtime_locks.setdefault(eid, asyncio.Lock())
        async with lock:
            rt = self.runtimes.get(eid)
            if rt is not None and rt.busy:  # a step of this server waits for tool results: it holds the lease
                return await self._run_op(rt, op)
            if resolving:
                raise Conflict(
                    f"no step of execution {eid!r} is waiting for tool results on this server: send tool results "
                    "to the server that answered the step with waiting: true"
                )
            attempt = await asyncio.to_thread(self.meta.take_step_lease, eid, self.server_id, self._step_lease_s)
            if attempt is None:
                raise Conflict(
                    f"a step of execution {eid!r} is running (on this or another server); retry when it has ended",
                    headers={"Retry-After": "1"},
                )
            try:
                rt = await self._current_runtime(tenant, eid, sx, rec.corpus_id)
                self._begin_step(rt, attempt)
            except BaseException:
                await asyncio.to_thread(self.meta.release_step_lease, eid, self.server_id, attempt)
                raise
            return await self._run_op(rt, op)

    @property
    def _step_lease_s(self) -> float:
        return float(self.settings.lease_seconds)

    async def _current_runtime(self, tenant: str, eid: str, sx: Any, corpus_id: str) -> RuntimeExecution:
        """This server's REPL of ``eid`` when it is at the last committed step, else one
        restored from the store."""
        rt = self.runtimes.get(eid)
        committed = await asyncio.to_thread(self.meta.count_turns, eid)
        if rt is not None and (rt.loop is not asyncio.get_running_loop() or rt.turn != committed):
            self._forget_runtime(eid)  # another server served a step since (or its loop is gone)
            await self._dispose(rt)
            rt = None
        if rt is None:
            await self._make_room(tenant, eid)
            try:
                corpus = await asyncio.to_thread(self.meta.get_corpus, corpus_id)
                rlm = await asyncio.to_thread(
                    self.make_rlm,
                    sx.request.get("models"),
                    sx.request.get("budgets"),
                    tenant=tenant,
                    on_event=self.event_sink(eid),
                )
                rt = await asyncio.to_thread(self._runtime, eid, rlm, corpus, sx.request)
                try:
                    await rt.open(restore=True)
                except RlmxError as e:
                    rt.engine.close()
                    raise Conflict(f"the execution could not be restored: {e}") from None
            except BaseException:
                self._runtime_slots.pop(eid, None)
                raise
            self.runtimes[eid] = rt
        return rt

    def _begin_step(self, rt: RuntimeExecution, attempt: int) -> None:
        """Write the step through the lease's fence; renew the lease while it runs."""
        eid = rt.execution_id
        lease = StepLease(attempt, asyncio.create_task(self._renew(eid, attempt)))
        rt.use_store(fenced_store(self.store, JobLeaseFence(eid, self.server_id, attempt), lease.lose))
        self._step_leases[eid] = lease

    async def _renew(self, eid: str, attempt: int) -> None:
        while True:
            await asyncio.sleep(self._step_lease_s / 3)
            with contextlib.suppress(RlmxError):
                if not await asyncio.to_thread(self.meta.renew_lease, eid, self.server_id, self._step_lease_s, attempt):
                    return

    async def _run_op(self, rt: RuntimeExecution, op: _Op) -> dict[str, Any]:
        try:
            view = await op(rt)
        except RuntimeConflict as e:
            if not rt.busy:  # nothing runs: give the lease back (a waiting step keeps it)
                await self._end_step(rt)
            raise Conflict(str(e)) from None
        except ToolResultError as e:
            raise BadRequest(str(e)) from None
        except BaseException:
            await self._end_step(rt, drop=True)
            raise
        if not rt.busy:  # the step is committed (not waiting for the client's tool results)
            await self._end_step(rt)
        return view

    async def _end_step(self, rt: RuntimeExecution, *, drop: bool = False) -> None:
        """Release the step lease (DONE when the execution ended); ``drop``: the REPL is not
        trusted any more (the step failed half-way), the next step restores it."""
        eid = rt.execution_id
        lease = self._step_leases.pop(eid, None)
        done = rt.status is not Status.RUNNING
        if lease is not None:
            lease.renewal.cancel()
            await asyncio.to_thread(self.meta.release_step_lease, eid, self.server_id, lease.attempt, done=done)
            drop = drop or lease.lost
        rt.use_store(self.store)
        if done or drop:
            self._forget_runtime(eid)
            await rt.close()
            rt.engine.close()
        if done:
            await asyncio.to_thread(self.final_event, eid)

    # -- this server's REPL cache ------------------------------------------------------------------
    async def _make_room(self, tenant: str, execution_id: str) -> None:
        """Count a REPL about to start against ``RLMX_MAX_RUNTIMES`` (this server), stopping
        idle ones first: those idle past ``RLMX_RUNTIME_IDLE_SECONDS``, then the least recently
        used; TooMany (429) when every REPL of this server is busy."""
        await self.reap_idle()
        st = self.settings
        while len(self._runtime_slots) >= st.max_runtimes:
            idle = [(rt.last_used, e) for e, rt in self.runtimes.items() if not rt.busy]
            if not idle:
                raise TooMany(
                    f"this server runs its limit of {st.max_runtimes} busy runtime REPLs (RLMX_MAX_RUNTIMES); "
                    "retry later, or on another server",
                    headers={"Retry-After": str(max(1, math.ceil(st.lease_seconds / 3)))},
                )
            _, oldest = min(idle)
            rt = self._forget_runtime(oldest)
            if rt is not None:
                await self._dispose(rt)
        self._runtime_slots[execution_id] = tenant

    async def reap_idle(self) -> None:
        """Stop the REPLs of runtime executions idle for ``RLMX_RUNTIME_IDLE_SECONDS`` (not
        those waiting for tool results); they are restored on their next step. Run by the
        HTTP app (every quarter of that, at most every 30 s) and by workers."""
        import time

        limit = self.settings.runtime_idle_seconds
        for eid, rt in list(self.runtimes.items()):
            if not rt.busy and time.monotonic() - rt.last_used > limit and self.runtimes.get(eid) is rt:
                self._forget_runtime(eid)
                await self._dispose(rt)

    async def close_runtimes(self) -> None:
        """Stop every cached REPL (their executions stay RUNNING: restored on use)."""
        for eid in list(self.runtimes):
            rt = self._forget_runtime(eid)
            if rt is not None:
                await self._dispose(rt)

    @staticmethod
    async def _dispose(rt: RuntimeExecution) -> None:
        if rt.loop is asyncio.get_running_loop():
            await rt.close()
        else:  # started in an event loop that is gone
            rt.abandon()
        rt.engine.close()
