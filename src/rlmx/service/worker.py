"""Workers: run the service's jobs (ingestion, answerer executions) from its queue.

The queue is :attr:`Service.queue <rlmx.service.base.ServiceBase.queue>` (:mod:`rlmx.queue`):
the ``jobs`` table claimed by lease in the embedded SQLite mode, Procrastinate on
PostgreSQL. The in-process worker of ``rlmx serve`` and any number of ``rlmx worker``
processes, on any hosts, share it. A killed worker's job goes to another worker once its
lease (``RLMX_LEASE_SECONDS``) has run out — the ``jobs`` row's lease, or the Procrastinate
worker's heartbeats — and the execution resumes from its last committed turn
(:mod:`rlmx.engine.resume`). A worker stopped politely gives its jobs back at once.

Fencing: each attempt at a job is a :class:`~rlmx.queue.Claim`; every write of the job is
committed only while that attempt holds it (:func:`.leases.fenced_store`), so a worker that
lost its job (a missed heartbeat, a stalled process) writes nothing more and never
overwrites the records of the worker that took it over. Only the attempt that lost the job
is stopped, and a worker never claims a job it is running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable

from ..queue import Claim
from ..store.base import JobRecord, MetadataStore
from .core import Service
from .warmup import warm_imports

__all__ = ["Worker", "heartbeat"]

log = logging.getLogger("rlmx.worker")


async def heartbeat(meta: MetadataStore, job: JobRecord, lease_s: float, on_lost: Callable[[], None]) -> None:
    """Renew ``job``'s ``jobs``-row lease (held by its ``lease_owner`` under claim
    ``attempts``) every third of ``lease_s``, off the event loop; when it is no longer held,
    call ``on_lost()`` and return (the MCP server's in-process runs)."""
    owner = job.lease_owner or ""
    while True:
        await asyncio.sleep(lease_s / 3)
        try:
            held = await asyncio.to_thread(meta.renew_lease, job.job_id, owner, lease_s, job.attempts)
        except Exception:  # the store is briefly unavailable: try again next beat
            log.warning("%s could not renew the lease of %s", owner, job.job_id)
            continue
        if not held:
            log.warning("%s lost the lease of %s; stopping it", owner, job.job_id)
            on_lost()
            return


class _Handler:
    """The service as the queue's :class:`~rlmx.queue.JobHandler`."""

    def __init__(self, service: Service):
        self.service = service

    async def run(self, claim: Claim) -> None:
        await self.service.run_claim(claim)

    async def requeue(self, claim: Claim) -> bool:
        return await self.service.requeue_claim(claim)

    async def failed(self, claim: Claim, error: str) -> None:
        await self.service.fail_claim(claim, error)


class Worker:
    """Runs up to ``concurrency`` jobs of ``service``'s queue at once (see the module doc).
    ``worker_id`` defaults to ``host:pid:random``; ``lease_s``/``poll_s`` default to the
    service's settings."""

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
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.concurrency = concurrency or s.worker_concurrency
        queue = service.queue
        if lease_s is not None:
            queue.lease_s = lease_s
        if poll_s is not None:
            queue.poll_s = poll_s

    async def run(self, stop: asyncio.Event | None = None, *, until_idle: bool = False) -> None:
        """Work until ``stop`` is set (or, with ``until_idle``, until no job is left); the
        running jobs are given back when it stops."""
        stop = stop or asyncio.Event()
        await asyncio.to_thread(warm_imports)
        reaper = asyncio.create_task(self._reap(stop))
        try:
            await self.service.queue.work(
                _Handler(self.service),
                stop=stop,
                concurrency=self.concurrency,
                until_idle=until_idle,
                owner=self.id,
            )
        finally:
            reaper.cancel()

    async def _reap(self, stop: asyncio.Event) -> None:
        """Stop idle runtime REPLs of this process while working."""
        every = min(30.0, self.service.settings.runtime_idle_seconds / 4)
        while not stop.is_set():
            await self.service.reap_idle()
            try:
                await asyncio.wait_for(stop.wait(), timeout=every)
            except TimeoutError:
                pass
