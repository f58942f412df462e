"""The job lifecycle as a worker drives it: run (or resume) a job under its claim, give it
back, abandon it, or record that its handler crashed.

A worker's queue (:mod:`rlmx.queue`) hands over a :class:`~rlmx.queue.Claim`; every write
of the job — the engine's (execution record, turns, sub-calls, snapshots) and the
service's (status, events) — goes through :func:`.leases.fenced_store`, so it counts only
while that attempt still holds the job. Store calls run in threads: the worker's event loop
(and its heartbeat) never waits for the database. The MCP server runs an answerer in
process under a ``jobs``-row lease (:meth:`JobsMixin.run_answerer` with a
:class:`~rlmx.store.base.JobRecord`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..engine.state import TASK_CANCELLED
from ..errors import ConfigError, NotFoundError, RlmxError
from ..lm.base import LMClient
from ..lm.redact import RedactPolicy
from ..queue import Claim
from ..queue.local import lease_claim
from ..store import Store
from ..store.base import JobRecord
from ..types import Status
from .base import TERMINAL
from .errors import ServiceError
from .executions import ExecutionsMixin
from .leases import fenced_store

__all__ = ["JobsMixin", "claim_of"]

log = logging.getLogger("rlmx.service")


def claim_of(job: JobRecord, on_lost: Callable[[], None] | None = None) -> Claim:
    """The claim of a ``jobs`` row held by its ``lease_owner`` under ``attempts`` (the MCP
    server's in-process runs)."""
    return lease_claim(job, job.lease_owner or "", on_lost)


class _CancelCheck:
    """``should_stop()`` for the engine's turn boundaries: the job's ``cancel_requested``,
    read from the store (the engine calls it in a thread: :meth:`Tree.acheck_stop`)."""

    def __init__(self, meta: Any, job_id: str):
        self.meta, self.job_id = meta, job_id

    def __call__(self) -> bool:
        job = self.meta.get_job(self.job_id)
        return bool(job is not None and job.cancel_requested)


class JobsMixin(ExecutionsMixin):
    """What a worker does with the jobs it holds (the :class:`~rlmx.queue.JobHandler` of
    :mod:`.worker`)."""

    # -- the queue's handler ----------------------------------------------------------------
    async def run_claim(self, claim: Claim) -> None:
        """Run the job of ``claim`` (``ingest`` or ``answerer``) under its fence."""
        store = fenced_store(self.store, claim.fence, claim.lost)
        if claim.kind == "ingest":
            await asyncio.to_thread(self.ingest_session, claim.ref_id, meta=store.meta)
        elif claim.kind == "answerer":
            await self._answer(claim, store)
        else:
            raise ValueError(f"unknown job kind {claim.kind!r}")

    async def requeue_claim(self, claim: Claim) -> bool:
        """The worker is stopping: should the job go back to the queue? An answerer whose
        execution had not ended is RUNNING again (the engine recorded CANCELLED when its task
        was cancelled) and goes back; one that had ended gets its final event (if the stop
        came before it) and does not. Written while the claim still holds."""
        if claim.kind != "answerer":
            return True
        return await asyncio.to_thread(self._reset_running, claim)

    def _reset_running(self, claim: Claim) -> bool:
        meta = fenced_store(self.store, claim.fence).meta
        rec = self.meta.get_execution(claim.ref_id)
        if rec.status != Status.RUNNING.value and (rec.status, rec.error) != (Status.CANCELLED.value, TASK_CANCELLED):
            events = self.meta.get_events(claim.ref_id, after=0, limit=100_000)
            if not events or events[-1]["kind"] != "final":
                self.final_event(claim.ref_id, meta)
            return False  # it ended for its own reasons: only the engine's "task cancelled" is undone
        rec.status, rec.error, rec.finished_at = Status.RUNNING.value, None, None
        meta.put_execution(rec)
        return True

    async def fail_claim(self, claim: Claim, error: str) -> None:
        """A job's handler crashed (a bug): the execution or session is marked FAILED (only
        while the claim holds)."""
        await asyncio.to_thread(self._fail_claim, claim, error)

    def _fail_claim(self, claim: Claim, error: str) -> None:
        meta = fenced_store(self.store, claim.fence).meta
        try:
            if claim.kind == "answerer":
                self._fail(claim.ref_id, Status.FAILED, error, meta)
                if not meta.lease_lost:
                    self.final_event(claim.ref_id, meta)
            elif claim.kind == "ingest":
                rec = self.meta.get_session(claim.ref_id)
                rec.status, rec.error = "FAILED", error
                meta.put_session(rec)
        except RlmxError:
            log.exception("could not record the failure of job %s", claim.job_id)

    # -- answerer executions ------------------------------------------------------------------
    async def run_answerer(
        self,
        job: JobRecord,
        *,
        sub_lm: LMClient | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        """Run (or resume) the answerer execution of ``job`` (held by its ``lease_owner``) to
        its end. ``sub_lm``: another sub-LM client (an MCP client's model); ``on_event`` also
        receives the events. Once the lease is lost nothing this run writes counts and
        ``on_lost()`` is called (the caller cancels the run)."""
        claim = claim_of(job, on_lost)
        store = fenced_store(self.store, claim.fence, claim.lost) if job.lease_owner else self.store
        await self._answer(claim, store, sub_lm=sub_lm, on_event=on_event)

    async def _answer(
        self,
        claim: Claim,
        store: Store,
        *,
        sub_lm: LMClient | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        eid = claim.ref_id
        meta = store.meta
        sx = await asyncio.to_thread(self.meta.get_service_execution, eid)
        if sx is None:
            raise NotFoundError(f"execution {eid!r} has no service record")
        req = sx.request
        writer = self.event_sink(eid, meta)
        sink: Callable[[str, dict[str, Any]], None] = writer
        if on_event is not None:
            extra = on_event

            def both(kind: str, data: dict[str, Any]) -> None:
                writer(kind, data)
                extra(kind, data)

            sink = both
        should_stop = _CancelCheck(self.meta, claim.job_id)
        try:
            if await asyncio.to_thread(should_stop):
                await asyncio.to_thread(self._fail, eid, Status.CANCELLED, "cancelled before it started", meta)
            else:
                session = await asyncio.to_thread(self.meta.get_session, sx.session_id)
                if session.corpus_id is None:
                    raise ConfigError(f"session {sx.session_id} has no corpus")
                corpus = await asyncio.to_thread(self.meta.get_corpus, session.corpus_id)
                rlm = await asyncio.to_thread(
                    self.make_rlm, req.get("models"), req.get("budgets"), tenant=sx.tenant, on_event=sink, store=store
                )
                rlm.redact = RedactPolicy.parse(req.get("redact"))  # checked when the execution was created
                resume = claim.attempt > 1 or bool(await asyncio.to_thread(self.meta.count_turns, eid))
                await rlm.aask(
                    corpus,
                    str(req["question"]),
                    req.get("output_schema"),
                    execution_id=eid,
                    resume=resume,
                    should_stop=should_stop,
                    sub_lm=sub_lm,
                    follow_up=req.get("previous_id"),
                )
        except (RlmxError, ServiceError) as e:
            await asyncio.to_thread(self._fail, eid, Status.FAILED, f"{type(e).__name__}: {e}", meta)
        await asyncio.to_thread(writer.flush)
        await asyncio.to_thread(self.final_event, eid, meta)

    # -- the MCP server's in-process runs -----------------------------------------------------
    def abandon_job(self, job: JobRecord, reason: str) -> None:
        """The holder of ``job``'s lease stops running it for good (an MCP ``ask`` whose
        request was cancelled): cancellation is requested, the execution is recorded
        CANCELLED unless it ended, and the job is DONE — all only while the lease is held."""
        try:
            if job.lease_owner is not None and not self.meta.holds_lease(job.job_id, job.lease_owner, job.attempts):
                return  # another worker runs it now
            self.meta.request_cancel(job.job_id)
            if job.kind == "answerer":
                meta = fenced_store(self.store, claim_of(job).fence).meta if job.lease_owner else self.meta
                if self.meta.get_execution(job.ref_id).status not in TERMINAL:
                    self._fail(job.ref_id, Status.CANCELLED, reason, meta)
                if meta.lease_lost:
                    return
                self.final_event(job.ref_id, meta)
            if job.lease_owner is not None:
                self.meta.finish_job(job.job_id, job.lease_owner, error=reason, attempt=job.attempts)
        except RlmxError:
            log.exception("could not record the end of job %s", job.job_id)

    def fail_job(self, job: JobRecord, error: str) -> None:
        """The MCP server's in-process run crashed (a bug): record it while the lease holds."""
        self._fail_claim(claim_of(job), error)
