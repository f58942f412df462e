"""The queue at scale: Procrastinate on the metadata store's PostgreSQL database.

One Procrastinate task, ``rlmx.job`` (queue ``rlmx``), carries a ``jobs`` row's id, kind
and ref id; its queueing lock is the job id, so a job is in the queue at most once.
Procrastinate's workers send heartbeats (every third of ``lease_s``); a worker silent for
``lease_s`` is stalled, and a recovery pass that every worker runs (one at a time, under
an advisory lock) gives its running jobs back (``retry_job``: ``attempts`` + 1). A job is
then fetched by another worker, which resumes the execution from its last committed turn.

Fencing: an attempt is the ``procrastinate_jobs`` row's ``(id, worker_id, attempts)``; the
store's write transactions lock that row and commit only while it is ``doing`` under the
same worker and attempt (:class:`ProcrastinateFence`). A stalled worker that wakes up
finds its writes refused and its attempt cancelled. A worker stopping politely cancels its
attempts, lets the handler make them resumable, and raises :class:`~rlmx.queue.base.Requeue`,
which the task's retry strategy turns into an immediate retry.

Cancellation by a client is the ``jobs`` row's ``cancel_requested`` (read by the handler at
turn boundaries); a job still waiting is cancelled in Procrastinate too (:meth:`withdraw`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from procrastinate import App, PsycopgConnector, RetryStrategy, SyncPsycopgConnector
from procrastinate.job_context import JobContext
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from .base import Claim, JobHandler, Requeue, WorkQueue

__all__ = ["PgQueue", "ProcrastinateFence", "libpq_url"]

log = logging.getLogger("rlmx.queue")

TASK = "rlmx.job"
QUEUE = "rlmx"
_RECOVERY_LOCK = 0x726C6D78  # "rlmx": one stalled-job recovery pass at a time
_SCHEMA_LOCK = 0x726C6D79


def libpq_url(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://u:p@h:5432/db`` → ``postgresql://u:p@h:5432/db`` (libpq)."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


class ProcrastinateFence:
    """An attempt at a Procrastinate job: held while its row is ``doing``, fetched by
    ``worker_id``, at ``attempts`` (locked for the transaction)."""

    def __init__(self, job_id: int, worker_id: int | None, attempts: int):
        self.job_id, self.worker_id, self.attempts = job_id, worker_id, attempts

    def held(self, conn: Connection) -> bool:
        row = conn.execute(
            text(
                "SELECT 1 FROM procrastinate_jobs WHERE id = :id AND status = 'doing' "
                "AND worker_id IS NOT DISTINCT FROM :w AND attempts = :a FOR UPDATE"
            ),
            {"id": self.job_id, "w": self.worker_id, "a": self.attempts},
        ).first()
        return row is not None

    def __repr__(self) -> str:
        return f"ProcrastinateFence({self.job_id}, worker={self.worker_id}, attempts={self.attempts})"


class PgQueue(WorkQueue):
    """Procrastinate on ``database_url`` (see the module doc). ``meta``: the SQL metadata
    store on the same database (its ``engine`` answers the fence and lookups)."""

    name = "procrastinate"

    def __init__(self, database_url: str, meta: Any, *, lease_s: float = 30.0, poll_s: float = 0.5):
        self.meta = meta
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.conninfo = libpq_url(database_url)
        self.app = App(connector=PsycopgConnector(conninfo=self.conninfo, min_size=1, max_size=4))
        self._handler: JobHandler | None = None
        self._owner = "worker"
        self._attempts: dict[tuple[str, int, str], asyncio.Task[Any]] = {}
        self._lost: set[tuple[str, int, str]] = set()  # attempts cancelled because they lost their job
        self._stopping = False
        self.app.task(
            name=TASK,
            queue=QUEUE,
            pass_context=True,
            retry=RetryStrategy(max_attempts=10_000, retry_exceptions={Requeue}),
        )(self._task)
        self._sync_app: App | None = None

    # -- schema -----------------------------------------------------------------------------
    def ensure_schema(self) -> bool:
        """Apply Procrastinate's schema when the database has none (under an advisory
        lock, so servers starting together do not race); True when it was applied."""
        with self.meta.engine.connect() as conn, conn.begin():
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
            present = conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar()
            if present is not None:
                return False
            raw = conn.connection.driver_connection  # psycopg: no placeholder parsing without params
            assert raw is not None
            raw.execute(self.app.schema_manager.get_schema())
        return True

    # -- the service's side (blocking; call from a thread) ----------------------------------
    def _sync(self) -> App:
        if self._sync_app is None:
            # a deferring App of its own with no tasks registered: it defers ``rlmx.job`` by
            # name through its own (synchronous) connector
            self._sync_app = App(connector=SyncPsycopgConnector(conninfo=self.conninfo, min_size=1, max_size=4))
            self._sync_app.open()
        return self._sync_app

    def enqueue(self, job_id: str, kind: str, ref_id: str) -> None:
        """Defer ``rlmx.job`` for the stored job (queueing lock: the job id)."""
        from procrastinate.exceptions import AlreadyEnqueued

        with contextlib.suppress(AlreadyEnqueued):
            self._sync().configure_task(TASK, queue=QUEUE, queueing_lock=job_id, lock=job_id).defer(
                job_id=job_id, kind=kind, ref_id=ref_id
            )

    def withdraw(self, job_id: str) -> bool:
        """Cancel the job's waiting Procrastinate job, if any (True when there was one)."""
        self.meta.request_cancel(job_id)
        with self.meta.engine.connect() as conn, conn.begin():
            ids = conn.execute(
                text("SELECT id FROM procrastinate_jobs WHERE queueing_lock = :j AND status = 'todo'"),
                {"j": job_id},
            ).scalars()
            waiting = list(ids)
        done = False
        for pid in waiting:
            done = self._sync().job_manager.cancel_job_by_id(int(pid)) or done
        return done

    def close(self) -> None:
        if self._sync_app is not None:
            with contextlib.suppress(Exception):
                self._sync_app.close()
            self._sync_app = None

    # -- workers ----------------------------------------------------------------------------
    async def _task(self, context: JobContext, job_id: str, kind: str, ref_id: str) -> None:
        handler = self._handler
        assert handler is not None, "a PgQueue task ran outside PgQueue.work"
        job = context.job
        loop = asyncio.get_running_loop()
        owner = f"{self._owner}/procrastinate-worker-{job.worker_id}"
        key = (job_id, int(job.attempts), owner)
        me = asyncio.current_task()
        assert me is not None

        def lost() -> None:
            def cancel() -> None:
                if not me.done():
                    log.warning("%s lost job %s (attempt %d); stopping that attempt", owner, job_id, job.attempts)
                    self._lost.add(key)
                    me.cancel()

            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(cancel)

        assert job.id is not None
        claim = Claim(
            job_id=job_id,
            kind=kind,
            ref_id=ref_id,
            attempt=int(job.attempts),
            owner=owner,
            fence=ProcrastinateFence(int(job.id), job.worker_id, int(job.attempts)),
            lost=lost,
        )
        for other_key, other in list(self._attempts.items()):
            if other_key[0] == job_id and not other.done():  # an older attempt of ours: it lost the job
                self._lost.add(other_key)
                other.cancel()
        self._attempts[key] = me
        log.info("%s runs %s job %s (attempt %d)", owner, kind, job_id, claim.attempt)
        try:
            await asyncio.to_thread(self._mark_running, job_id, claim)
            await handler.run(claim)
        except asyncio.CancelledError:
            if key in self._lost:
                return  # another attempt holds the job: this one ends quietly, writing nothing
            if self._stopping:
                give_back = True
                with contextlib.suppress(Exception):
                    give_back = await handler.requeue(claim)
                if give_back:
                    raise Requeue(f"worker stopping: job {job_id} goes back to the queue") from None
                await asyncio.to_thread(self.meta.finish_job, job_id, None, None, None)
                return  # it had ended: the Procrastinate job succeeds
            raise
        except Exception as e:
            log.exception("job %s (%s) failed", job_id, kind)
            with contextlib.suppress(Exception):
                await handler.failed(claim, f"internal error: {type(e).__name__}: {e}")
                await asyncio.to_thread(self.meta.finish_job, job_id, None, repr(e), None)
        else:  # done: a stop now must not give the job back
            await asyncio.shield(asyncio.to_thread(self.meta.finish_job, job_id, None, None, None))
        finally:
            self._attempts.pop(key, None)
            self._lost.discard(key)

    def _mark_running(self, job_id: str, claim: Claim) -> None:
        """Record the attempt on the ``jobs`` row (for status views), fenced like any write."""
        from ..store import schema as t

        with self.meta.engine.connect() as conn, conn.begin():
            if claim.fence.held(conn):
                conn.execute(
                    t.jobs.update()
                    .where(t.jobs.c.job_id == job_id)
                    # the row counts claims from 1 (as LocalQueue does); Procrastinate's from 0
                    .values(state="RUNNING", lease_owner=claim.owner, attempts=claim.attempt + 1)
                )

    async def _recover(self, stop: asyncio.Event) -> None:
        """Every third of ``lease_s``: give the jobs of stalled workers back to the queue
        (one pass at a time across workers, under an advisory lock)."""
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.lease_s / 3)
            if stop.is_set():
                return
            try:
                await self._recover_once()
            except Exception:
                log.warning("stalled-job recovery failed; retrying next pass", exc_info=True)

    async def _recover_once(self) -> int:
        """One pass: under a session advisory lock (on a connection of its own, so the lock is
        held for the whole pass and released if this worker dies), retry the jobs of workers
        whose heartbeat is older than ``lease_s``. Returns how many went back."""
        import psycopg

        async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
            got = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (_RECOVERY_LOCK,))).fetchone()
            if not got or not got[0]:
                return 0
            try:
                stalled = list(
                    await self.app.job_manager.get_stalled_jobs(
                        queue=QUEUE, task_name=TASK, seconds_since_heartbeat=self.lease_s
                    )
                )
                for job in stalled:
                    log.warning("job %s of a stalled worker goes back to the queue", job.id)
                    await self.app.job_manager.retry_job(job)
                return len(stalled)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (_RECOVERY_LOCK,))

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
        """Run a Procrastinate worker with ``handler`` until ``stop`` is set."""
        self._handler = handler
        self._owner = owner
        self._stopping = False
        async with self.app.open_async():
            recovery = asyncio.create_task(self._recover(stop))
            worker = asyncio.create_task(
                self.app.run_worker_async(
                    queues=[QUEUE],
                    name=owner,
                    concurrency=concurrency,
                    wait=not until_idle,
                    fetch_job_polling_interval=self.poll_s,
                    update_heartbeat_interval=max(0.2, self.lease_s / 3),
                    stalled_worker_timeout=self.lease_s,
                    install_signal_handlers=False,
                    # stopping: running attempts are cancelled at once and given back;
                    # caught up (until_idle): they finish first
                    shutdown_graceful_timeout=None if until_idle else 0.0,  # type: ignore[arg-type]  # None: wait for them
                )
            )
            stopper = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({worker, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._stopping = True
                stopper.cancel()
                if not worker.done():
                    worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker
                stop.set()
                recovery.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await recovery
