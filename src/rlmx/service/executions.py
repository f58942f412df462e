"""Answerer executions: queued, their events and final event, read (views, events,
trajectory) and cancelled per tenant."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from ..engine.resume import stored_usage
from ..engine.schema import OutputSchema
from ..engine.trace import load_trace
from ..errors import ConfigError, NotFoundError
from ..ids import new_id
from ..lm.redact import RedactPolicy
from ..store.base import ExecutionRecord, JobRecord, MetadataStore, ServiceExecutionRecord, utcnow
from ..types import Status
from .base import TERMINAL
from .errors import BadRequest, Conflict, NotFound
from .events import EventWriter, jsonable
from .sessions import SessionsMixin

__all__ = ["ExecutionsMixin"]

log = logging.getLogger("rlmx.service")


class ExecutionsMixin(SessionsMixin):
    """Executions of tenants: answerer ones queued; any read, followed or cancelled."""

    # -- answerer executions --------------------------------------------------------------------
    @staticmethod
    def _check_schema(schema: Any) -> None:
        if schema is not None:
            try:
                OutputSchema(schema)
            except ConfigError as e:
                raise BadRequest(str(e)) from None

    def create_followup(self, tenant: str, execution_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Queue an answerer execution that follows up the tenant's finished root execution
        ``execution_id`` on the same session (:mod:`rlmx.engine.followup`: its REPL variables
        and the earlier exchanges carry over; its own budgets and trace). Raises NotFound
        (another tenant's or unknown), Conflict (still running, or a child)."""
        sx, rec = self.owned_execution(tenant, execution_id)
        if rec.status == Status.RUNNING.value:
            raise Conflict(f"execution {execution_id} is still running: follow it up once it has ended")
        if rec.parent_id is not None:
            raise Conflict(f"execution {execution_id} is a child execution: follow up its root, {rec.root_id}")
        return self.create_execution(tenant, sx.session_id, request, previous_id=execution_id)

    def create_execution(
        self,
        tenant: str,
        session_id: str,
        request: dict[str, Any],
        *,
        run_here: str | None = None,
        previous_id: str | None = None,
    ) -> dict[str, Any]:
        """Queue an answerer execution: ``{question, models?, budgets?, output_schema?, redact?}``.
        ``run_here``: a worker id that runs it right away (its job is created claimed);
        ``previous_id``: the execution it follows up (see :meth:`create_followup`)."""
        session, corpus = self._ready_corpus(tenant, session_id)
        question = str(request.get("question") or "").strip()
        if not question:
            raise BadRequest("the question is empty")
        self._check_schema(request.get("output_schema"))
        self._check_redact(request.get("redact"))
        rlm = self.make_rlm(request.get("models"), request.get("budgets"), tenant=tenant)
        eid = new_id("exe")
        req = {**request, "question": question, "models": self.resolve_models(request.get("models"))}
        if previous_id is not None:
            req["previous_id"] = previous_id
        self.meta.put_execution(
            ExecutionRecord(
                execution_id=eid,
                corpus_id=corpus.corpus_id,
                question=question,
                mode="answerer",
                root_id=eid,
                root_model=rlm.root_spec,
                sub_model=rlm.sub_spec,
                budgets=rlm.budgets.model_dump(),
                previous_id=previous_id,
            )
        )
        self.meta.put_service_execution(
            ServiceExecutionRecord(
                execution_id=eid, tenant=tenant, session_id=session.session_id, mode="answerer", request=req
            )
        )
        job = JobRecord(job_id=eid, kind="answerer", ref_id=eid)
        if run_here is not None:
            job.state, job.lease_owner, job.attempts = "RUNNING", run_here, 1
            job.lease_expires_at = utcnow() + timedelta(seconds=self.settings.lease_seconds)
        self.meta.enqueue_job(job)
        if run_here is None:
            self.queue.enqueue(job.job_id, job.kind, job.ref_id)
        return {"execution_id": eid, "status": Status.RUNNING.value}

    @staticmethod
    def _check_redact(redact: Any) -> None:
        try:
            RedactPolicy.parse(redact)
        except ConfigError as e:
            raise BadRequest(str(e)) from None

    def estimate_execution(self, tenant: str, session_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """A dry run of :meth:`create_execution`: the same checks, then
        :meth:`rlmx.api.RLM.estimate` (no model called, no execution, job or event created).
        ``{"dry_run": True, "session_id", "estimate"}``."""
        session, corpus = self._ready_corpus(tenant, session_id)
        question = str(request.get("question") or "").strip()
        if not question:
            raise BadRequest("the question is empty")
        self._check_schema(request.get("output_schema"))
        self._check_redact(request.get("redact"))
        rlm = self.make_rlm(request.get("models"), request.get("budgets"), tenant=tenant)
        est = rlm.estimate(corpus, question, request.get("output_schema"))
        return {"dry_run": True, "session_id": session.session_id, "estimate": est.to_dict()}

    def event_sink(self, root_id: str, meta: MetadataStore | None = None) -> EventWriter:
        """Where the events of the tree rooted at ``root_id`` go: ``meta`` (default the
        service's store), written off the event loop and in order (:class:`.events.EventWriter`)."""
        return EventWriter(meta or self.meta, root_id)

    def final_event(self, execution_id: str, meta: MetadataStore | None = None) -> None:
        rec = self.meta.get_execution(execution_id)
        (meta or self.meta).add_event(
            execution_id,
            "final",
            jsonable(
                {
                    "execution_id": execution_id,
                    "status": rec.status,
                    "answer": rec.answer,
                    "citations": rec.citations,
                    "fields": rec.fields,
                    "usage": rec.usage,
                    "error": rec.error,
                }
            ),
        )

    def _fail(self, execution_id: str, status: Status, error: str, meta: MetadataStore | None = None) -> None:
        rec = self.meta.get_execution(execution_id)
        rec.status, rec.error, rec.finished_at = status.value, error, utcnow()
        (meta or self.meta).put_execution(rec)

    # -- executions: reading and cancelling -------------------------------------------------------
    def owned_execution(self, tenant: str, execution_id: str) -> tuple[ServiceExecutionRecord, ExecutionRecord]:
        missing = NotFound(f"execution {execution_id!r} not found")
        sx = self.meta.get_service_execution(execution_id)
        if sx is None or sx.tenant != tenant:
            raise missing
        try:
            return sx, self.meta.get_execution(execution_id)
        except NotFoundError:
            raise missing from None

    def execution_view(self, tenant: str, execution_id: str) -> dict[str, Any]:
        sx, rec = self.owned_execution(tenant, execution_id)
        turns = self.meta.get_turns(execution_id)
        usage = (
            rec.usage if rec.status in TERMINAL and rec.usage else stored_usage(self.meta, execution_id).model_dump()
        )
        last = turns[-1] if turns else None
        job = self.meta.get_job(execution_id)
        tokens = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
        return {
            "execution_id": rec.execution_id,
            "session_id": sx.session_id,
            "previous_id": rec.previous_id,
            "mode": sx.mode,
            "status": rec.status,
            "question": rec.question,
            "answer": rec.answer,
            "citations": rec.citations,
            "fields": rec.fields,
            "error": rec.error,
            "models": {"root": rec.root_model, "sub": rec.sub_model},
            "usage": usage,
            "cost_usd": usage.get("cost_usd"),
            "budgets": rec.budgets,
            "budgets_consumed": {
                "max_turns": usage.get("turns", 0),
                "max_sub_calls": usage.get("sub_calls", 0),
                "max_total_tokens": tokens,
                "max_cost_usd": usage.get("cost_usd"),
                "max_wall_seconds": usage.get("wall_seconds", 0.0),
                "max_depth": usage.get("max_depth_reached", 0),
                "max_tool_calls": usage.get("tool_calls", 0),
            },
            "last_turn": None
            if last is None
            else {
                "turn": last.get("turn"),
                "code": last.get("code"),
                "stdout": (last.get("stdout") or "")[-4000:] or None,
                "error": last.get("error"),
                "final": last.get("final"),
            },
            "turns": len(turns),
            "cancel_requested": bool(job and job.cancel_requested),
            "created_at": rec.created_at.isoformat(),
            "finished_at": rec.finished_at.isoformat() if rec.finished_at else None,
        }

    async def cancel(self, tenant: str, execution_id: str) -> dict[str, Any]:
        """Ask the execution to stop: an answerer stops at its next turn boundary (at once
        when still queued); a runtime execution stops now."""
        sx, rec = await asyncio.to_thread(self.owned_execution, tenant, execution_id)
        if rec.status in TERMINAL:
            return {"execution_id": execution_id, "status": rec.status, "cancel_requested": False}
        if sx.mode == "runtime":
            rt = self._forget_runtime(execution_id)
            if rt is not None:
                lease = self._step_leases.pop(execution_id, None)
                if lease is not None:
                    lease.renewal.cancel()
                await rt.cancel("cancelled by the client")
                rt.engine.close()
            else:  # its REPL, if any, is cached on another server: that one drops it on next use
                await asyncio.to_thread(self._fail, execution_id, Status.CANCELLED, "cancelled by the client")
            await asyncio.to_thread(self.meta.finish_job, execution_id, None, "cancelled by the client")
            await asyncio.to_thread(self.final_event, execution_id)
        else:
            if await asyncio.to_thread(self.queue.withdraw, execution_id):  # no worker started it
                await asyncio.to_thread(self._fail, execution_id, Status.CANCELLED, "cancelled before it started")
                await asyncio.to_thread(self.final_event, execution_id)
        status = (await asyncio.to_thread(self.meta.get_execution, execution_id)).status
        return {"execution_id": execution_id, "status": status, "cancel_requested": True}

    def events(self, tenant: str, execution_id: str, after: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        self.owned_execution(tenant, execution_id)
        return self.meta.get_events(execution_id, after=after, limit=limit)

    def is_finished(self, execution_id: str) -> bool:
        return self.meta.get_execution(execution_id).status in TERMINAL

    def trace(self, tenant: str, execution_id: str) -> dict[str, Any]:
        self.owned_execution(tenant, execution_id)
        return load_trace(self.meta, execution_id)
