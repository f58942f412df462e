"""The embedded queue: workers claim rows of the ``jobs`` table by update, under leases.

Kept small for the embedded SQLite mode (with PostgreSQL, :mod:`rlmx.queue.pg` runs
Procrastinate instead). A job is RUNNING under a lease of ``lease_s`` seconds (the
database's clock), renewed every third of that by a heartbeat task; a killed worker stops
renewing and another worker claims the job once the lease expired, and resumes it. Every
store call runs in a thread (:func:`asyncio.to_thread`), so a busy SQLite file never stalls
the event loop, and so never the heartbeat: a worker does not lose a job it is running
because its own loop was blocked. A worker never claims a job it is running (``exclude``),
and a lost lease cancels only the attempt that lost it (tasks are keyed by attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from ..store.base import JobRecord, MetadataStore
from ..store.sql_jobs import JobLeaseFence
from .base import Claim, JobHandler, WorkQueue

__all__ = ["LocalQueue", "lease_claim"]

log = logging.getLogger("rlmx.queue")


def lease_claim(job: JobRecord, owner: str, lost: Callable[[], None] | None = None) -> Claim:
    """The claim of a ``jobs`` row held by ``owner`` under its ``attempts`` (fenced by
    :class:`~rlmx.store.sql_jobs.JobLeaseFence`)."""
    return Claim(
        job_id=job.job_id,
        kind=job.kind,
        ref_id=job.ref_id,
        attempt=job.attempts,
        owner=owner,
        fence=JobLeaseFence(job.job_id, owner, job.attempts),
        lost=lost or (lambda: None),
    )


class LocalQueue(WorkQueue):
    """The ``jobs`` table as a queue (see the module doc). ``lease_s``: a lease in seconds;
    ``poll_s``: how often an idle worker looks for work (an in-process ``enqueue`` wakes the
    workers of this process at once)."""

    name = "local"

    def __init__(self, meta: MetadataStore, *, lease_s: float = 30.0, poll_s: float = 0.5):
        self.meta = meta
        self.lease_s = lease_s
        self.poll_s = poll_s
        self._wakers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lost: set[tuple[str, int, str]] = set()  # attempts cancelled because they lost their job

    # -- the service's side -----------------------------------------------------------------
    def enqueue(self, job_id: str, kind: str, ref_id: str) -> None:
        """The row is the queue: only wake this process's workers (others poll)."""
        for loop, ev in list(self._wakers):
            with contextlib.suppress(RuntimeError):  # loop closed
                loop.call_soon_threadsafe(ev.set)

    def withdraw(self, job_id: str) -> bool:
        before = self.meta.request_cancel(job_id)
        return before is not None and before.state == "QUEUED"

    # -- workers ----------------------------------------------------------------------------
    async def work(
        self,
        handler: JobHandler,
        *,
        stop: Any,
        concurrency: int,
        until_idle: bool = False,
        wake: Any = None,
        owner: str = "worker",
    ) -> None:
        """Claim and run jobs until ``stop`` is set (see :meth:`WorkQueue.work`)."""
        loop = asyncio.get_running_loop()
        wake = wake or asyncio.Event()
        entry = (loop, wake)
        self._wakers.add(entry)
        tasks: dict[tuple[str, int, str], asyncio.Task[None]] = {}
        stopping = asyncio.Event()
        try:
            while not stop.is_set():
                while len(tasks) < concurrency:
                    running = sorted({k[0] for k in tasks})
                    job = await asyncio.to_thread(self.meta.claim_job, owner, self.lease_s, None, running)
                    if job is None:
                        break
                    claim = self._claim(job, owner, loop, tasks)
                    log.info("%s claimed %s job %s (attempt %d)", owner, job.kind, job.job_id, job.attempts)
                    task = asyncio.create_task(self._run(handler, claim, stopping, tasks))
                    tasks[claim.key] = task
                if until_idle and not tasks:
                    break
                wake.clear()
                waits: set[asyncio.Future[Any]] = {
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(wake.wait()),
                    *tasks.values(),
                }
                _done, pending = await asyncio.wait(waits, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED)
                for f in pending:
                    if f not in tasks.values():
                        f.cancel()
        finally:
            self._wakers.discard(entry)
            stopping.set()
            running_tasks = list(tasks.values())
            for task in running_tasks:
                task.cancel()
            await asyncio.gather(*running_tasks, return_exceptions=True)

    def _claim(
        self,
        job: JobRecord,
        owner: str,
        loop: asyncio.AbstractEventLoop,
        tasks: dict[tuple[str, int, str], asyncio.Task[None]],
    ) -> Claim:
        key = (job.job_id, job.attempts, owner)

        def lost() -> None:  # from the store or the heartbeat, maybe in a thread
            def cancel() -> None:
                task = tasks.get(key)
                if task is not None and not task.done():
                    log.warning("%s lost job %s (attempt %d); stopping that attempt", owner, job.job_id, job.attempts)
                    self._lost.add(key)
                    task.cancel()

            with contextlib.suppress(RuntimeError):  # loop closed
                loop.call_soon_threadsafe(cancel)

        return lease_claim(job, owner, lost)

    async def _heartbeat(self, claim: Claim) -> None:
        """Renew the lease every third of ``lease_s``; when it is gone, ``claim.lost()``."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                held = await asyncio.to_thread(
                    self.meta.renew_lease, claim.job_id, claim.owner, self.lease_s, claim.attempt
                )
            except Exception:  # the store is briefly unavailable: try again next beat
                log.warning("%s could not renew the lease of %s", claim.owner, claim.job_id)
                continue
            if not held:
                claim.lost()
                return

    async def _run(
        self,
        handler: JobHandler,
        claim: Claim,
        stopping: asyncio.Event,
        tasks: dict[tuple[str, int, str], asyncio.Task[None]],
    ) -> None:
        beat = asyncio.create_task(self._heartbeat(claim))
        try:
            await handler.run(claim)
        except asyncio.CancelledError:
            if claim.key in self._lost:
                pass  # another attempt holds the job now: write nothing more
            elif stopping.is_set():
                with contextlib.suppress(Exception):
                    if await handler.requeue(claim):
                        await asyncio.to_thread(self.meta.release_job, claim.job_id, claim.owner, claim.attempt)
                    else:  # it had ended
                        await asyncio.to_thread(self.meta.finish_job, claim.job_id, claim.owner, None, claim.attempt)
            raise
        except Exception as e:  # a bug in a handler: record it, keep the worker alive
            log.exception("job %s (%s) failed", claim.job_id, claim.kind)
            with contextlib.suppress(Exception):
                await handler.failed(claim, f"internal error: {type(e).__name__}: {e}")
                await asyncio.to_thread(self.meta.finish_job, claim.job_id, claim.owner, repr(e), claim.attempt)
        else:  # done: a stop now must not give the job back
            await asyncio.shield(
                asyncio.to_thread(self.meta.finish_job, claim.job_id, claim.owner, None, claim.attempt)
            )
        finally:
            beat.cancel()
            tasks.pop(claim.key, None)
            self._lost.discard(claim.key)
