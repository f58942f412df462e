"""The job lifecycle as a worker drives it: run (or resume) an answerer execution under its
lease, give a job back, abandon it, or record that its handler crashed. Every write goes
through :meth:`~.base.ServiceBase.job_store`, so it counts only while the lease is held."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, NotFoundError, RlmxError
from ..lm.base import LMClient
from ..store.base import JobRecord
from ..types import Status
from .base import TERMINAL
from .errors import ServiceError
from .executions import ExecutionsMixin

__all__ = ["JobsMixin"]

log = logging.getLogger("rlmx.service")


class JobsMixin(ExecutionsMixin):
    """What a worker does with the jobs it holds."""

    async def run_answerer(
        self,
        job: JobRecord,
        *,
        sub_lm: LMClient | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        """Run (or resume) the answerer execution of ``job`` to its end. ``sub_lm``: another
        sub-LM client (an MCP client's model); ``on_event`` also receives the events.
        Everything is written through :meth:`job_store`: once the job's lease is lost to
        another worker, nothing this run writes counts, ``on_lost()`` is called (the caller
        cancels the run) and the execution stops at its next turn boundary at the latest."""
        eid = job.ref_id
        sx = self.meta.get_service_execution(eid)
        if sx is None:
            raise NotFoundError(f"execution {eid!r} has no service record")
        req = sx.request
        store = self.job_store(job, on_lost)
        meta = store.meta

        def should_stop() -> bool:
            j = self.meta.get_job(eid)
            if j is None:
                return False
            taken = job.lease_owner is not None and (j.lease_owner, j.attempts) != (job.lease_owner, job.attempts)
            return j.cancel_requested or taken

        try:
            if should_stop():
                self._fail(eid, Status.CANCELLED, "cancelled before it started", meta)
            else:
                session = self.meta.get_session(sx.session_id)
                if session.corpus_id is None:
                    raise ConfigError(f"session {sx.session_id} has no corpus")
                corpus = self.meta.get_corpus(session.corpus_id)
                store_sink = self.event_sink(eid, meta)
                sink = store_sink
                if on_event is not None:
                    extra = on_event

                    def both(kind: str, data: dict[str, Any]) -> None:
                        store_sink(kind, data)
                        extra(kind, data)

                    sink = both
                rlm = self.make_rlm(req.get("models"), req.get("budgets"), tenant=sx.tenant, on_event=sink, store=store)
                resume = job.attempts > 1 or bool(self.meta.get_turns(eid))
                await rlm.aask(
                    corpus,
                    str(req["question"]),
                    req.get("output_schema"),
                    execution_id=eid,
                    resume=resume,
                    should_stop=should_stop,
                    sub_lm=sub_lm,
                )
        except (RlmxError, ServiceError) as e:
            self._fail(eid, Status.FAILED, f"{type(e).__name__}: {e}", meta)
        self.final_event(eid, meta)

    def requeue(self, job: JobRecord, worker_id: str) -> None:
        """A worker shutting down gives its job back: the execution is RUNNING again (the
        engine recorded CANCELLED when its task was cancelled) and resumes elsewhere. The
        record is reset while the lease is still held, then the job is released."""
        if job.kind == "answerer":
            meta = self.job_store(job).meta
            rec = self.meta.get_execution(job.ref_id)
            rec.status, rec.error, rec.finished_at = Status.RUNNING.value, None, None
            meta.put_execution(rec)
        self.meta.release_job(job.job_id, worker_id, attempt=job.attempts)

    def abandon_job(self, job: JobRecord, reason: str) -> None:
        """The holder of ``job``'s lease stops running it for good (an MCP ``ask`` whose
        request was cancelled): cancellation is requested, the execution is recorded
        CANCELLED unless it ended, and the job is DONE — all only while the lease is held."""
        try:
            if job.lease_owner is not None and not self.meta.holds_lease(job.job_id, job.lease_owner, job.attempts):
                return  # another worker runs it now
            self.meta.request_cancel(job.job_id)
            if job.kind == "answerer":
                meta = self.job_store(job).meta
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
        """A job's handler crashed (a bug): the execution or session is marked FAILED
        (only while the job's lease is held)."""
        meta = self.job_store(job).meta
        try:
            if job.kind == "answerer":
                self._fail(job.ref_id, Status.FAILED, error, meta)
                if not meta.lease_lost:
                    self.final_event(job.ref_id, meta)
            elif job.kind == "ingest":
                rec = self.meta.get_session(job.ref_id)
                rec.status, rec.error = "FAILED", error
                meta.put_session(rec)
        except RlmxError:
            log.exception("could not record the failure of job %s", job.job_id)
