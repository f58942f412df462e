"""The work-queue seam: what the service asks of a queue, whatever runs it.

A job is a row of the metadata store's ``jobs`` table (:class:`~rlmx.store.base.JobRecord`:
``kind`` ``ingest`` or ``answerer``, ``ref_id``, ``cancel_requested``), written by the
service in both modes. Who delivers it to a worker differs:

* :class:`~rlmx.queue.local.LocalQueue` (embedded SQLite): workers claim the row itself by
  update, under a lease renewed by a heartbeat (timed by the database's clock).
* :class:`~rlmx.queue.pg.PgQueue` (PostgreSQL): Procrastinate delivers it; its worker
  heartbeats and stalled-job retries replace the lease.

Either way a worker runs a job as a :class:`Claim` whose :attr:`Claim.fence` tells, inside a
write transaction of the metadata store, whether this very attempt still holds the job
(``MetadataStore.fenced_by``). An attempt that lost its job is cancelled — that attempt
only — and its late writes change nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..store.base import Fence

__all__ = ["Claim", "JobHandler", "Requeue", "WorkQueue", "fence_held"]


@dataclass(frozen=True)
class Claim:
    """One attempt at a job. ``job_id``/``kind``/``ref_id``: the ``jobs`` row; ``attempt``
    and ``owner``: the claim (a new claim of the same job has another pair); ``fence``: an
    object with ``held(conn) -> bool`` checked in the store's write transactions; ``lost``:
    call it when this attempt must stop writing (the queue cancels the attempt's task)."""

    job_id: str
    kind: str
    ref_id: str
    attempt: int
    owner: str
    fence: Fence
    lost: Callable[[], None] = field(default=lambda: None, compare=False, repr=False)

    @property
    def key(self) -> tuple[str, int, str]:
        """Identifies the attempt: a worker may run a new attempt of a job whose old attempt
        it has not finished cancelling yet."""
        return (self.job_id, self.attempt, self.owner)


class JobHandler(Protocol):
    """What runs the jobs (the service)."""

    async def run(self, claim: Claim) -> None:
        """Run the job of ``claim`` to its end (errors of the work itself are recorded by
        the handler, not raised)."""

    async def requeue(self, claim: Claim) -> bool:
        """The worker is stopping: make the job's records resumable before it goes back;
        False when the job had in fact ended (it is then finished, not given back)."""

    async def failed(self, claim: Claim, error: str) -> None:
        """``run`` raised (a bug): record the failure."""


class Requeue(Exception):
    """Raised out of a Procrastinate task to give its job back (the worker is stopping)."""


class WorkQueue(ABC):
    """Delivers the ``jobs`` rows to workers (see the module doc)."""

    name: str = "queue"
    lease_s: float = 30.0
    """Seconds after which a silent worker's jobs go to another worker."""
    poll_s: float = 0.5
    """Seconds between an idle worker's looks for work."""

    @abstractmethod
    def enqueue(self, job_id: str, kind: str, ref_id: str) -> None:
        """Hand the (already stored) job ``job_id`` to the workers. Blocking I/O: call it
        from a thread in async code."""

    @abstractmethod
    def withdraw(self, job_id: str) -> bool:
        """Take a job that no worker started yet out of the queue; True when it was still
        waiting. Blocking I/O."""

    @abstractmethod
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
        """Run jobs with ``handler``, up to ``concurrency`` at once, until ``stop`` (an
        :class:`asyncio.Event`) is set or, with ``until_idle``, no job is left; ``owner``
        names this worker in leases and logs. On stop the
        running attempts are cancelled and their jobs given back (``handler.requeue``)."""

    def ensure_schema(self) -> bool:
        """Create the queue's own tables when absent (True when it did)."""
        return False

    def close(self) -> None:  # noqa: B027 - optional: queues without connections keep it
        """Release connections."""


def fence_held(meta: Any, fence: Fence) -> bool:
    """Whether ``fence`` holds now, read in its own transaction of ``meta`` (a SQL metadata
    store with ``.engine``). Used before blob writes, which have no transaction of their
    own; the window between this check and the write is one round trip."""
    with meta.engine.connect() as conn, conn.begin():
        return bool(fence.held(conn))
