"""Runtime executions: the client drives the REPL step by step. The registry of live REPLs
(``Service.runtimes``) is per process, capped by ``RLMX_MAX_RUNTIMES`` and
``RLMX_MAX_RUNTIMES_PER_TENANT``; idle REPLs are stopped and restored by replay on their
next request."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from ..api import RLM
from ..corpus import context_spec
from ..engine.orchestrator import Engine
from ..engine.runtime import RuntimeConflict, RuntimeExecution, ToolResultError
from ..engine.schema import OutputSchema
from ..errors import RlmxError
from ..ids import new_id
from ..store.base import CorpusRecord, ServiceExecutionRecord
from ..types import Status
from .base import TERMINAL
from .errors import BadRequest, Conflict, TooMany
from .executions import ExecutionsMixin

__all__ = ["RuntimesMixin"]


class RuntimesMixin(ExecutionsMixin):
    """Runtime executions and the registry of their live REPLs."""

    # -- runtime executions ---------------------------------------------------------------------
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

    async def create_runtime(self, tenant: str, session_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Start a runtime execution: ``{question?, models?, budgets?, output_schema?,
        sub_calls: "server"|"client"}``; its REPL starts now."""
        session, corpus = self._ready_corpus(tenant, session_id)
        self._check_schema(request.get("output_schema"))
        eid = new_id("exe")
        rlm = self.make_rlm(request.get("models"), request.get("budgets"), tenant=tenant, on_event=self.event_sink(eid))
        req = {**request, "models": self.resolve_models(request.get("models"))}
        await self._take_runtime_slot(tenant, eid)
        try:
            rt = self._runtime(eid, rlm, corpus, req)
            self.meta.put_service_execution(
                ServiceExecutionRecord(
                    execution_id=eid, tenant=tenant, session_id=session.session_id, mode="runtime", request=req
                )
            )
            try:
                await rt.open()
            except RlmxError as e:
                rt.engine.close()
                raise BadRequest(f"the REPL could not start: {e}") from None
        except BaseException:
            self._runtime_slots.pop(eid, None)
            raise
        self.runtimes[eid] = rt
        return {
            "execution_id": eid,
            "status": Status.RUNNING.value,
            "sub_calls": "client" if rt.client_tools else "server",
        }

    async def _live_runtime(self, tenant: str, execution_id: str) -> RuntimeExecution:
        sx, rec = self.owned_execution(tenant, execution_id)
        if sx.mode != "runtime":
            raise Conflict(f"execution {execution_id!r} is an answerer execution; steps are for runtime executions")
        if rec.status in TERMINAL:
            raise Conflict(f"execution {execution_id!r} is {rec.status}; start a new one")
        lock = self._runtime_locks.setdefault(execution_id, asyncio.Lock())
        async with lock:
            rt = self.runtimes.get(execution_id)
            if rt is not None and rt.loop is not asyncio.get_running_loop():  # its event loop is gone
                self._forget_runtime(execution_id)
                rt.abandon()
                rt = None
            if rt is None:  # this process restarted, or the REPL was idle: restore by replay
                await self._take_runtime_slot(tenant, execution_id)
                try:
                    corpus = self.meta.get_corpus(rec.corpus_id)
                    rlm = self.make_rlm(
                        sx.request.get("models"),
                        sx.request.get("budgets"),
                        tenant=tenant,
                        on_event=self.event_sink(execution_id),
                    )
                    rt = self._runtime(execution_id, rlm, corpus, sx.request)
                    try:
                        await rt.open(restore=True)
                    except RlmxError as e:
                        rt.engine.close()
                        raise Conflict(f"the execution could not be restored: {e}") from None
                except BaseException:
                    self._runtime_slots.pop(execution_id, None)
                    raise
                self.runtimes[execution_id] = rt
            return rt

    async def _after_step(self, rt: RuntimeExecution, view: dict[str, Any]) -> dict[str, Any]:
        if rt.status is not Status.RUNNING:
            self._forget_runtime(rt.execution_id)
            self._runtime_locks.pop(rt.execution_id, None)
            await rt.close()
            rt.engine.close()
            self.final_event(rt.execution_id)
        return view

    async def step(self, tenant: str, execution_id: str, code: str) -> dict[str, Any]:
        rt = await self._live_runtime(tenant, execution_id)
        try:
            view = await rt.step(code)
        except RuntimeConflict as e:
            raise Conflict(str(e)) from None
        return await self._after_step(rt, view)

    async def resolve_tools(
        self, tenant: str, execution_id: str, results: dict[str, Any], server_ids: list[str]
    ) -> dict[str, Any]:
        rt = await self._live_runtime(tenant, execution_id)
        try:
            view = await rt.resolve(results, server_ids)
        except RuntimeConflict as e:
            raise Conflict(str(e)) from None
        except ToolResultError as e:
            raise BadRequest(str(e)) from None
        return await self._after_step(rt, view)

    async def _take_runtime_slot(self, tenant: str, execution_id: str) -> None:
        """Count a REPL about to start for ``tenant`` against ``RLMX_MAX_RUNTIMES`` (this
        process) and ``RLMX_MAX_RUNTIMES_PER_TENANT``, after stopping idle ones; TooMany
        (429) at a limit."""
        await self.reap_idle()
        st = self.settings
        mine = [e for e, t in self._runtime_slots.items() if t == tenant]
        if len(mine) >= st.max_runtimes_per_tenant:
            raise TooMany(
                f"this tenant already has {len(mine)} runtime executions with a live REPL on this server "
                f"(the limit is {st.max_runtimes_per_tenant}, RLMX_MAX_RUNTIMES_PER_TENANT): finish or cancel "
                "one (POST /v1/executions/{id}/cancel), or retry when an idle one has been stopped",
                headers={"Retry-After": str(self._retry_after(mine))},
            )
        if len(self._runtime_slots) >= st.max_runtimes:
            raise TooMany(
                f"this server runs its limit of {st.max_runtimes} runtime REPLs (RLMX_MAX_RUNTIMES); retry later",
                headers={"Retry-After": str(self._retry_after(list(self._runtime_slots)))},
            )
        self._runtime_slots[execution_id] = tenant

    def _retry_after(self, execution_ids: list[str]) -> int:
        """Seconds until the first of these REPLs is stopped as idle (at least 1)."""
        limit = self.settings.runtime_idle_seconds
        now = time.monotonic()
        waits = [
            limit - (now - rt.last_used)
            for e in execution_ids
            if (rt := self.runtimes.get(e)) is not None and not rt.busy
        ]
        return max(1, math.ceil(min(waits, default=min(limit, 60.0))))

    async def reap_idle(self) -> None:
        """Stop the REPLs of runtime executions idle for ``RLMX_RUNTIME_IDLE_SECONDS`` (not
        those waiting for tool results); they are restored on their next request. Run by the
        HTTP app (every quarter of that, at most every 30 s) and by workers."""
        limit = self.settings.runtime_idle_seconds
        for eid, rt in list(self.runtimes.items()):
            if not rt.busy and time.monotonic() - rt.last_used > limit and self.runtimes.get(eid) is rt:
                self._forget_runtime(eid)
                await self._dispose(rt)

    async def close_runtimes(self) -> None:
        """Stop every runtime execution's REPL (their records stay RUNNING: restored on use)."""
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
