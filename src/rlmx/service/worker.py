"""Workers of the work queue: claim a job by update, hold it by lease + heartbeat, run it.

The queue is the ``jobs`` table of the metadata store (:meth:`MetadataStore.claim_job`,
``renew_lease``, ``release_job``, ``finish_job``), so the in-process worker of ``rlmx serve``
and any number of ``rlmx worker`` processes share it. A job is RUNNING under a lease of
``RLMX_LEASE_SECONDS``, renewed every third of that; a worker that is killed stops renewing,
its lease expires and another worker (or a restarted ``serve``) claims the job and resumes
the execution from its last committed turn (:mod:`rlmx.engine.resume`). A worker that is
stopped politely gives its jobs back at once (``release_job``).

Fencing: a claim is identified by the job's ``lease_owner`` and ``attempts`` (a new claim
increments it). A job runs on :meth:`Service.job_store`, whose writes count only while that
claim holds; a worker that lost its lease (a missed heartbeat, a stalled process) is stopped
— by its heartbeat, or by its first write that the store refused — and writes nothing more,
so it never overwrites the records of the worker that took the job over. Lease expiry is
timed by the database's clock.

Job kinds: ``ingest`` (a session's documents) and ``answerer`` (an execution).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from typing import Any

from ..store.base import JobRecord, MetadataStore
from .core import Service

__all__ = ["Worker", "heartbeat"]

log = logging.getLogger("rlmx.worker")


async def heartbeat(meta: MetadataStore, job: JobRecord, lease_s: float, on_lost: Callable[[], None]) -> None:
    """Renew ``job``'s lease (held by its ``lease_owner`` under claim ``attempts``) every
    third of ``lease_s``; when it is no longer held, call ``on_lost()`` and return."""
    owner = job.lease_owner or ""
    while True:
        await asyncio.sleep(lease_s / 3)
        try:
            held = meta.renew_lease(job.job_id, owner, lease_s, attempt=job.attempts)
        except Exception:  # the store is briefly unavailable: try again next beat
            log.warning("%s could not renew the lease of %s", owner, job.job_id)
            continue
        if not held:
            log.warning("%s lost the lease of %s; stopping it", owner, job.job_id)
            on_lost()
            return


class Worker:
    """Runs up to ``concurrency`` jobs of ``service``'s queue at once (see the module doc).
    ``worker_id`` defaults to ``host:pid:random``."""

    def __init__(
        self,
        service: Service,
        *,
        worker_id: str | None = None,
        concurrency: int | None = None,
        lease_s: float | None = None,
        poll_s: float | None = None,
    ):
        s = service.settings
        self.service = service
        self.meta = service.meta
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.concurrency = concurrency or s.worker_concurrency
        self.lease_s = lease_s or s.lease_seconds
        self.poll_s = poll_s or s.poll_seconds
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._lost: set[str] = set()

    async def run(self, stop: asyncio.Event | None = None, *, until_idle: bool = False) -> None:
        """Work until ``stop`` is set (or, with ``until_idle``, until no job is left)."""
        stop = stop or asyncio.Event()
        wake = asyncio.Event()
        self.service.add_waker(asyncio.get_running_loop(), wake)
        try:
            while not stop.is_set():
                while len(self.tasks) < self.concurrency:
                    job = self.meta.claim_job(self.id, self.lease_s)
                    if job is None:
                        break
                    log.info("worker %s claimed %s job %s (attempt %d)", self.id, job.kind, job.job_id, job.attempts)
                    self.tasks[job.job_id] = asyncio.create_task(self._run(job))
                await self.service.reap_idle()
                if until_idle and not self.tasks:
                    break
                wake.clear()
                waits: set[asyncio.Future[Any]] = {
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(wake.wait()),
                    *self.tasks.values(),
                }
                _done, pending = await asyncio.wait(waits, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED)
                for f in pending:
                    if f not in self.tasks.values():
                        f.cancel()
        finally:
            self.service.remove_waker(wake)
            await self.shutdown()

    async def shutdown(self) -> None:
        """Stop the running jobs and give them back to the queue."""
        self._stopping = True
        tasks = list(self.tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _lose(self, job_id: str) -> None:
        """The lease of ``job_id`` was lost: stop its task, write nothing more for it."""
        if job_id in self._lost:
            return
        self._lost.add(job_id)
        task = self.tasks.get(job_id)
        if task is not None:
            task.cancel()

    async def _run(self, job: JobRecord) -> None:
        loop = asyncio.get_running_loop()

        def lost() -> None:  # from the store, maybe in a thread
            try:
                loop.call_soon_threadsafe(self._lose, job.job_id)
            except RuntimeError:  # loop closed
                pass

        beat = asyncio.create_task(heartbeat(self.meta, job, self.lease_s, lost))
        try:
            if job.kind == "ingest":
                meta = self.service.job_store(job, lost).meta
                await asyncio.to_thread(self.service.ingest_session, job.ref_id, meta=meta)
            elif job.kind == "answerer":
                await self.service.run_answerer(job, on_lost=lost)
            else:
                raise ValueError(f"unknown job kind {job.kind!r}")
            self.meta.finish_job(job.job_id, self.id, attempt=job.attempts)
        except asyncio.CancelledError:
            if job.job_id in self._lost:
                pass  # another worker holds it now
            elif self._stopping:
                with contextlib.suppress(Exception):
                    self.service.requeue(job, self.id)
            raise
        except Exception as e:  # a bug in a handler: record it, keep the worker alive
            log.exception("job %s (%s) failed", job.job_id, job.kind)
            self.service.fail_job(job, f"internal error: {type(e).__name__}: {e}")
            with contextlib.suppress(Exception):
                self.meta.finish_job(job.job_id, self.id, error=repr(e), attempt=job.attempts)
        finally:
            beat.cancel()
            self.tasks.pop(job.job_id, None)
            self._lost.discard(job.job_id)
