"""Store interfaces (DESIGN.md: ``MetadataStore``, ``BlobStore``) and the records they hold.

Callers use only these interfaces; the embedded implementations are SQLite
(:mod:`rlmx.store.sqlite`) and a local folder (:mod:`rlmx.store.blobs`). PostgreSQL and S3
implementations can replace them without touching callers.

:class:`DocumentRecord`, :class:`FailedDocument`, :class:`CorpusRecord` and :func:`utcnow`
live in :mod:`rlmx.corpus.records` (the corpus layer makes them), the service's records
(:class:`ApiKeyRecord`, :class:`SessionRecord`, :class:`ServiceExecutionRecord`,
:class:`JobRecord`) in :mod:`rlmx.store.service_records`; both are re-exported here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from rlmx.corpus.records import CorpusRecord, DocumentRecord, FailedDocument, utcnow
from rlmx.store.service_records import ApiKeyRecord, JobRecord, ServiceExecutionRecord, SessionRecord

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = [
    "ApiKeyRecord",
    "BlobStore",
    "CorpusRecord",
    "DocumentRecord",
    "ExecutionRecord",
    "FailedDocument",
    "Fence",
    "JobRecord",
    "MetadataStore",
    "ServiceExecutionRecord",
    "SessionRecord",
    "utcnow",
]


class ExecutionRecord(BaseModel):
    """One execution (root or child). ``usage``/``answer``/``citations`` are JSON-able dicts."""

    execution_id: str
    corpus_id: str
    question: str
    mode: str = "answerer"
    status: str = "RUNNING"
    parent_id: str | None = None
    root_id: str | None = None
    previous_id: str | None = None
    """The execution this one follows up in a conversation (None: not a follow-up)."""
    depth: int = 0
    root_model: str = ""
    sub_model: str = ""
    answer: str | None = None
    citations: list[dict[str, Any]] = Field(default_factory=list)
    fields: dict[str, Any] | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
    budgets: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


@runtime_checkable
class Fence(Protocol):
    """A claim that a fenced view's writes depend on (:meth:`MetadataStore.fenced_by`).

    ``held(conn)`` runs inside the write's own transaction, before the write, on the SQL
    store's connection: it returns True while the claim is still held, and should lock what
    it checked (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already
    holds the write lock) so the claim cannot be lost before the write commits. Examples:
    the ``jobs`` row of :mod:`rlmx.store.sql_jobs` (``JobLeaseFence``), a
    ``procrastinate_jobs`` row."""

    def held(self, conn: Connection) -> bool:
        """True while the claim is held (may raise SQLAlchemy errors: the write fails)."""
        ...


def _service_only(name: str) -> NotImplementedError:
    return NotImplementedError(f"{name}: this metadata store does not support the service (rlmx.service)")


class BlobStore(ABC):
    """Byte blobs by key (``"text/<sha>.txt"``). Keys use ``/`` and ``[A-Za-z0-9._-]``."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (readers never see a partial blob)."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Return the blob. Raises :class:`~rlmx.errors.NotFoundError` when absent."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def local_path(self, key: str) -> Path:
        """Return a local file path holding the blob (materialised first for remote stores),
        so the REPL can memory-map it. Raises ``NotFoundError`` when absent."""

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Store ``data`` under ``key`` only when no blob is stored there (a conditional
        create: S3 ``If-None-Match: *``, a hard link locally). Returns True when this call
        created the blob, False when one already existed (left unchanged). Atomic: of several
        concurrent callers, across processes and hosts sharing the store, exactly one gets
        True. Raises :class:`~rlmx.errors.StoreError` when the store fails, ``ValueError`` for
        an invalid key. Wrappers must delegate it; this default refuses (no atomic create)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no atomic put_if_absent; implement it (or delegate to the wrapped store)"
        )


class MetadataStore(ABC):
    """Documents, corpora, executions (turns, sub-calls) and the LLM cache."""

    # documents and corpora
    @abstractmethod
    def find_document(self, raw_sha256: str, parser: str, parser_version: str) -> DocumentRecord | None: ...

    @abstractmethod
    def put_document(self, doc: DocumentRecord) -> None: ...

    @abstractmethod
    def get_document(self, doc_id: str) -> DocumentRecord:
        """Raises ``NotFoundError``."""

    @abstractmethod
    def put_corpus(self, corpus: CorpusRecord) -> None: ...

    @abstractmethod
    def get_corpus(self, corpus_id: str) -> CorpusRecord:
        """Raises ``NotFoundError``."""

    # executions and their trajectory
    @abstractmethod
    def put_execution(self, rec: ExecutionRecord) -> None:
        """Insert or replace the execution row."""

    @abstractmethod
    def get_execution(self, execution_id: str) -> ExecutionRecord:
        """Raises ``NotFoundError``."""

    @abstractmethod
    def list_executions(self, *, parent_id: str | None = None, limit: int = 50) -> list[ExecutionRecord]:
        """Root executions newest first when ``parent_id`` is None, else that parent's children."""

    @abstractmethod
    def add_turn(self, execution_id: str, index: int, data: dict[str, Any]) -> None:
        """Persist turn ``index`` (JSON-able) before the next turn begins."""

    @abstractmethod
    def get_turns(self, execution_id: str) -> list[dict[str, Any]]: ...

    def count_turns(self, execution_id: str) -> int:
        """How many turns the execution has committed (stores may count without reading)."""
        return len(self.get_turns(execution_id))

    @abstractmethod
    def add_subcall(self, execution_id: str, data: dict[str, Any]) -> None: ...

    def add_subcalls(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        """Append ``(execution_id, data)`` sub-call records in order (stores may use one
        transaction: the trace of one ``llm_query_batched``)."""
        for execution_id, data in rows:
            self.add_subcall(execution_id, data)

    @abstractmethod
    def get_subcalls(self, execution_id: str) -> list[dict[str, Any]]: ...

    # LLM cache
    @abstractmethod
    def cache_get(self, key: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def cache_put(self, key: str, value: dict[str, Any]) -> None: ...

    def cache_get_many(self, keys: list[str]) -> list[dict[str, Any] | None]:
        """The cached values of ``keys``, in order (None where absent)."""
        return [self.cache_get(k) for k in keys]

    def cache_put_many(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        """Store (or replace) ``(key, value)`` pairs (stores may use one transaction)."""
        for key, value in items:
            self.cache_put(key, value)

    # --- service (issue 4): optional, implemented by the SQL store -------------------------
    # API keys
    def put_api_key(self, rec: ApiKeyRecord) -> None:
        raise _service_only("put_api_key")

    def find_api_key(self, key_hmac: str) -> ApiKeyRecord | None:
        """The key with this HMAC (revoked or not), or None."""
        raise _service_only("find_api_key")

    def revoke_api_key(self, key_id: str) -> bool:
        """Mark the key revoked; False when no such key."""
        raise _service_only("revoke_api_key")

    def list_api_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        raise _service_only("list_api_keys")

    # sessions
    def put_session(self, rec: SessionRecord) -> None:
        """Insert or replace the session row."""
        raise _service_only("put_session")

    def get_session(self, session_id: str) -> SessionRecord:
        """Raises ``NotFoundError`` (deleted sessions are still returned: check ``deleted_at``)."""
        raise _service_only("get_session")

    def list_sessions(self, tenant: str, *, limit: int = 100) -> list[SessionRecord]:
        """The tenant's sessions that are not deleted, newest first."""
        raise _service_only("list_sessions")

    def put_session_ingest(
        self,
        session_id: str,
        *,
        documents_parsed: int,
        documents_total: int | None,
        summary: dict[str, Any] | None = None,
    ) -> None:
        """Record a session's ingestion progress and, when done, its summary."""
        raise _service_only("put_session_ingest")

    def get_session_ingest(self, session_ids: list[str]) -> dict[str, dict[str, Any]]:
        """``{session_id: {"documents_parsed", "documents_total", "summary"}}`` (started only)."""
        raise _service_only("get_session_ingest")

    def tenant_has_document(self, tenant: str, doc_id: str) -> bool:
        """True when a live (not deleted) session of ``tenant`` holds the document."""
        raise _service_only("tenant_has_document")

    # executions of the service
    def put_service_execution(self, rec: ServiceExecutionRecord) -> None:
        raise _service_only("put_service_execution")

    def get_service_execution(self, execution_id: str) -> ServiceExecutionRecord | None:
        raise _service_only("get_service_execution")

    def abandon_subcalls_after(self, execution_id: str, turn: int) -> int:
        """Mark the sub-call records of turns after ``turn`` (a turn that was in flight when
        a worker stopped) ``"abandoned": true``: kept, since what they cost was spent, but
        no longer answers for a replay; returns how many were newly marked."""
        raise _service_only("abandon_subcalls_after")

    # work queue
    def enqueue_job(self, rec: JobRecord) -> None:
        raise _service_only("enqueue_job")

    def get_job(self, job_id: str) -> JobRecord | None:
        raise _service_only("get_job")

    def claim_job(
        self, worker_id: str, lease_s: float, kinds: list[str] | None = None, exclude: list[str] | None = None
    ) -> JobRecord | None:
        """Atomically take the oldest job that is QUEUED, or RUNNING with an expired lease;
        it becomes RUNNING, leased by ``worker_id`` for ``lease_s`` seconds."""
        raise _service_only("claim_job")

    def renew_lease(self, job_id: str, worker_id: str, lease_s: float, attempt: int | None = None) -> bool:
        """Extend the lease (heartbeat); False when ``worker_id`` no longer holds it (with
        ``attempt``: under that claim — the job's ``attempts`` when it was claimed)."""
        raise _service_only("renew_lease")

    def release_job(self, job_id: str, worker_id: str, attempt: int | None = None) -> bool:
        """Give a job held by ``worker_id`` back to the queue (QUEUED) so another worker
        takes it at once (a worker shutting down); False when it no longer held it."""
        raise _service_only("release_job")

    def finish_job(
        self, job_id: str, worker_id: str | None, error: str | None = None, attempt: int | None = None
    ) -> bool:
        """Mark the job DONE (when ``worker_id`` holds it — under claim ``attempt`` when
        given —, or unconditionally when None)."""
        raise _service_only("finish_job")

    def holds_lease(self, job_id: str, worker_id: str, attempt: int | None = None) -> bool:
        """``worker_id`` holds the RUNNING job (under claim ``attempt`` when given)."""
        raise _service_only("holds_lease")

    def fenced(
        self, job_id: str, worker_id: str, attempt: int, on_lost: Callable[[], None] | None = None
    ) -> MetadataStore:
        """A view of this store for the holder of a job's lease: its writes are committed
        only while ``worker_id`` still holds ``job_id`` under claim ``attempt`` (checked
        atomically with each write); a write after the lease was lost changes nothing and
        calls ``on_lost()`` (once). Reads are the store's own."""
        raise _service_only("fenced")

    def fenced_by(self, fence: Fence, on_lost: Callable[[], None] | None = None) -> MetadataStore:
        """A view of this store whose every write transaction first calls
        ``fence.held(conn)`` (same transaction, before the write): when it returns False the
        write is rolled back (it changes nothing) and ``on_lost()`` is called, once per view.
        Reads are the store's own; :attr:`lease_lost` tells whether a write was dropped."""
        raise _service_only("fenced_by")

    @property
    def lease_lost(self) -> bool:
        """On a :meth:`fenced` view: a write was dropped because the lease was lost."""
        return False

    def add_runtime_job(self, rec: JobRecord, tenant: str, cap: int) -> int | None:
        """Insert a runtime execution's step-lease row unless ``tenant`` has ``cap`` open
        runtime executions; returns how many it had, or None at the cap."""
        raise _service_only("add_runtime_job")

    def take_step_lease(self, execution_id: str, owner: str, lease_s: float) -> int | None:
        """Take a runtime execution's step lease for ``lease_s`` seconds; its claim number,
        or None when another holder has it."""
        raise _service_only("take_step_lease")

    def release_step_lease(self, execution_id: str, owner: str, attempt: int, *, done: bool = False) -> bool:
        """Give a step lease back (IDLE, or DONE with ``done``); False when not held."""
        raise _service_only("release_step_lease")

    def request_cancel(self, job_id: str) -> JobRecord | None:
        """Set ``cancel_requested``; a QUEUED job becomes DONE at once. Returns the job
        as it was before, or None when absent."""
        raise _service_only("request_cancel")

    # events
    def add_event(self, execution_id: str, kind: str, data: dict[str, Any]) -> int:
        """Append an event of the execution tree rooted at ``execution_id``; returns its id."""
        raise _service_only("add_event")

    def get_events(self, execution_id: str, *, after: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        """Events with id > ``after``, oldest first: ``{"id", "kind", "data", "created_at"}``."""
        raise _service_only("get_events")
