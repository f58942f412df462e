"""The work queue of the SQL store: the ``jobs`` table, claim by update, leases timed by the
database's clock, and fencing by a job's lease (:class:`JobLeaseFence`).

Leases use ``strftime('now')`` on SQLite and ``now()`` on PostgreSQL, so workers on several
hosts need no synchronised clocks. On PostgreSQL the claim's ``SELECT ... FOR UPDATE SKIP
LOCKED`` lets concurrent claimers take different jobs; the guarded update makes a lost race
update no row, so a job is never claimed twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, text
from sqlalchemy.sql.elements import ColumnElement

from rlmx.store import schema as t
from rlmx.store.base import JobRecord, MetadataStore, utcnow
from rlmx.store.sql_core import SQLCore

__all__ = ["QUEUED_KINDS", "JobLeaseFence", "JobsMixin"]


def _lease(job_id: str, worker_id: str, attempt: int | None) -> list[ColumnElement[bool]]:
    j = t.jobs
    cond = [j.c.job_id == job_id, j.c.lease_owner == worker_id, j.c.state == "RUNNING"]
    if attempt is not None:
        cond.append(j.c.attempts == attempt)
    return cond


def _holds(conn: Connection, job_id: str, worker_id: str, attempt: int | None) -> bool:
    q = select(t.jobs.c.job_id).where(*_lease(job_id, worker_id, attempt)).with_for_update()
    return conn.execute(q).first() is not None


@dataclass(frozen=True)
class JobLeaseFence:
    """A :class:`~rlmx.store.base.Fence`: ``worker_id`` holds the RUNNING ``jobs`` row
    ``job_id`` under claim ``attempt`` (its ``attempts`` when claimed). ``held`` locks the
    row (``SELECT ... FOR UPDATE``) so a renewal or a new claim waits for the write."""

    job_id: str
    worker_id: str
    attempt: int | None

    def held(self, conn: Connection) -> bool:
        """True while the lease is held (checked in ``conn``'s transaction)."""
        return _holds(conn, self.job_id, self.worker_id, self.attempt)


QUEUED_KINDS = ("ingest", "answerer")
"""Job kinds that workers claim (a ``runtime`` row is the step lease of a runtime execution)."""


class JobsMixin(SQLCore):
    """The ``jobs`` queue methods of :class:`~rlmx.store.sql.SQLMetadataStore`."""

    def enqueue_job(self, rec: JobRecord) -> None:
        """Insert a job (its ``job_id`` must be new, else ``StoreError``)."""
        with self._write() as conn:
            conn.execute(t.jobs.insert().values(**rec.model_dump()))

    def get_job(self, job_id: str) -> JobRecord | None:
        """The job, or None when absent."""
        j = t.jobs
        with self._read() as conn:
            row = conn.execute(select(j).where(j.c.job_id == job_id)).first()
        return None if row is None else JobRecord.model_validate(dict(row._mapping))

    @staticmethod
    def _db_now(conn: Connection, plus_s: float = 0.0) -> ColumnElement[Any]:
        """The database's clock (UTC), plus ``plus_s`` seconds: leases do not depend on the
        clocks of the workers' hosts. On SQLite the text has the stored format."""
        if conn.dialect.name == "sqlite":
            return func.strftime("%Y-%m-%d %H:%M:%f", "now", f"{plus_s:+.3f} seconds").concat("000")
        return func.now() + timedelta(seconds=plus_s)

    def claim_job(
        self,
        worker_id: str,
        lease_s: float,
        kinds: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> JobRecord | None:
        """Claim by update: pick the oldest claimable job, then update it guarded by the same
        condition (one transaction, ``BEGIN IMMEDIATE`` on SQLite; on PostgreSQL the pick
        skips rows locked by other claimers and the guard makes a lost race update no row).
        Lease expiry uses the database's clock. ``kinds``: only jobs of these kinds (default:
        ``ingest`` and ``answerer``; ``runtime`` rows are step leases, never claimed here);
        ``exclude``: job ids the caller is running (a worker never claims its own job).
        Returns the claimed job, or None."""
        j = t.jobs
        with self._write() as conn:
            claimable = or_(
                j.c.state == "QUEUED",
                and_(j.c.state == "RUNNING", j.c.lease_expires_at < self._db_now(conn)),
            )
            q = select(j.c.job_id).where(claimable).order_by(j.c.created_at, j.c.job_id).limit(1)
            q = q.where(j.c.kind.in_(kinds or list(QUEUED_KINDS)))
            if exclude:
                q = q.where(j.c.job_id.not_in(exclude))
            row = conn.execute(q.with_for_update(skip_locked=True)).first()
            if row is None:
                return None
            res = conn.execute(
                j.update()
                .where(j.c.job_id == row.job_id, claimable)
                .values(
                    state="RUNNING",
                    lease_owner=worker_id,
                    lease_expires_at=self._db_now(conn, lease_s),
                    attempts=j.c.attempts + 1,
                    updated_at=utcnow(),
                )
            )
            if not res.rowcount:
                return None
            got = conn.execute(select(j).where(j.c.job_id == row.job_id)).first()
        return None if got is None else JobRecord.model_validate(dict(got._mapping))

    def holds_lease(self, job_id: str, worker_id: str, attempt: int | None = None) -> bool:
        """``worker_id`` holds the RUNNING job (under claim ``attempt`` when given)."""
        with self._read() as conn:
            return _holds(conn, job_id, worker_id, attempt)

    def fenced(
        self, job_id: str, worker_id: str, attempt: int, on_lost: Callable[[], None] | None = None
    ) -> MetadataStore:
        """A view of this store (same connections) whose every write is committed only while
        ``worker_id`` holds ``job_id`` under claim ``attempt`` — checked in the write's own
        transaction (:class:`JobLeaseFence` through :meth:`fenced_by`). A write after the
        lease was lost is rolled back (it changes nothing) and ``on_lost()`` is called once."""
        return self.fenced_by(JobLeaseFence(job_id, worker_id, attempt), on_lost)

    def renew_lease(self, job_id: str, worker_id: str, lease_s: float, attempt: int | None = None) -> bool:
        """Extend the lease by ``lease_s`` seconds from now (database clock); False when
        ``worker_id`` no longer holds it."""
        j = t.jobs
        with self._write() as conn:
            res = conn.execute(
                j.update()
                .where(*_lease(job_id, worker_id, attempt))
                .values(lease_expires_at=self._db_now(conn, lease_s), updated_at=utcnow())
            )
        return bool(res.rowcount)

    def release_job(self, job_id: str, worker_id: str, attempt: int | None = None) -> bool:
        """Give the job back to the queue (QUEUED); False when ``worker_id`` no longer held it."""
        j = t.jobs
        with self._write() as conn:
            res = conn.execute(
                j.update()
                .where(*_lease(job_id, worker_id, attempt))
                .values(state="QUEUED", lease_owner=None, lease_expires_at=None, updated_at=utcnow())
            )
        return bool(res.rowcount)

    def finish_job(
        self, job_id: str, worker_id: str | None, error: str | None = None, attempt: int | None = None
    ) -> bool:
        """Mark the job DONE (when ``worker_id`` holds it, or unconditionally when None)."""
        j = t.jobs
        cond: list[ColumnElement[bool]] = [j.c.job_id == job_id]
        if worker_id is not None:
            cond = _lease(job_id, worker_id, attempt)
        with self._write() as conn:
            res = conn.execute(
                j.update().where(*cond).values(state="DONE", lease_expires_at=None, error=error, updated_at=utcnow())
            )
        return bool(res.rowcount)

    def request_cancel(self, job_id: str) -> JobRecord | None:
        """Set ``cancel_requested``; a QUEUED job becomes DONE at once. Returns the job as it
        was before, or None when absent."""
        j = t.jobs
        with self._write() as conn:
            row = conn.execute(select(j).where(j.c.job_id == job_id).with_for_update()).first()
            if row is None:
                return None
            before = JobRecord.model_validate(dict(row._mapping))
            values: dict[str, Any] = {"cancel_requested": True, "updated_at": utcnow()}
            if before.state == "QUEUED":
                values.update(state="DONE", error="cancelled")
            conn.execute(j.update().where(j.c.job_id == job_id).values(**values))
        return before

    # -- runtime executions: the step lease ------------------------------------------------
    def add_runtime_job(self, rec: JobRecord, tenant: str, cap: int) -> int | None:
        """Insert the step-lease row of a new runtime execution (``kind="runtime"``,
        ``state="IDLE"``) unless ``tenant`` already has ``cap`` open runtime executions on
        any server; returns how many it had before (None: at the cap, nothing written).
        Counted and inserted in one transaction (serialised per tenant on PostgreSQL by an
        advisory lock, on SQLite by ``BEGIN IMMEDIATE``)."""
        j, sx = t.jobs, t.service_executions
        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": f"rlmx-runtime:{tenant}"})
            n = conn.execute(
                select(func.count())
                .select_from(j.join(sx, sx.c.execution_id == j.c.job_id))
                .where(j.c.kind == "runtime", j.c.state != "DONE", sx.c.tenant == tenant)
            ).scalar_one()
            if n >= cap:
                return None
            conn.execute(j.insert().values(**rec.model_dump()))
        return int(n)

    def take_step_lease(self, execution_id: str, owner: str, lease_s: float) -> int | None:
        """Take the step lease of a runtime execution for ``lease_s`` seconds (database
        clock): only when no step of it runs elsewhere (the row is IDLE, or its holder's
        lease expired — a server that died mid-step). Returns the claim number (the row's
        ``attempts``), or None when another server holds it or the execution is over."""
        j = t.jobs
        with self._write() as conn:
            free = or_(j.c.state == "IDLE", and_(j.c.state == "RUNNING", j.c.lease_expires_at < self._db_now(conn)))
            res = conn.execute(
                j.update()
                .where(j.c.job_id == execution_id, j.c.kind == "runtime", free)
                .values(
                    state="RUNNING",
                    lease_owner=owner,
                    lease_expires_at=self._db_now(conn, lease_s),
                    attempts=j.c.attempts + 1,
                    updated_at=utcnow(),
                )
            )
            if not res.rowcount:
                return None
            attempts = conn.execute(select(j.c.attempts).where(j.c.job_id == execution_id)).scalar_one()
        return int(attempts)

    def release_step_lease(self, execution_id: str, owner: str, attempt: int, *, done: bool = False) -> bool:
        """End a step: the row is IDLE again (``done``: DONE, the execution ended); False
        when ``owner`` no longer held it under ``attempt``."""
        j = t.jobs
        with self._write() as conn:
            res = conn.execute(
                j.update()
                .where(*_lease(execution_id, owner, attempt))
                .values(
                    state="DONE" if done else "IDLE",
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=utcnow(),
                )
            )
        return bool(res.rowcount)
