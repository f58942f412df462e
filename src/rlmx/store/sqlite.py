"""The embedded :class:`~rlmx.store.base.MetadataStore`: SQLAlchemy 2 Core over SQLite.

The queries are plain SQLAlchemy Core on the tables of :mod:`rlmx.store.schema`; only
upserts are dialect-specific (``INSERT ... ON CONFLICT``, shared by SQLite and PostgreSQL),
so a PostgreSQL store can reuse this class with another engine.

Several processes may open the same file: the database runs in WAL mode (readers never
block the writer), every write transaction starts with ``BEGIN IMMEDIATE`` (no lock
upgrade deadlocks) and a busy timeout of 30 s makes writers wait for each other.

Work-queue leases are timed by the database's clock (``strftime('now')`` on SQLite,
``now()`` on PostgreSQL), so workers on several hosts need no synchronised clocks.
:meth:`SQLiteMetadataStore.fenced` gives the holder of a job's lease a view whose writes are
committed only while it still holds the lease (fencing).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path, PurePath
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, Table, and_, bindparam, create_engine, event, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import ColumnElement

from rlmx.errors import NotFoundError, StoreError
from rlmx.store import schema as t
from rlmx.store.base import (
    ApiKeyRecord,
    CorpusRecord,
    DocumentRecord,
    ExecutionRecord,
    FailedDocument,
    JobRecord,
    MetadataStore,
    ServiceExecutionRecord,
    SessionRecord,
    utcnow,
)

__all__ = ["SQLiteMetadataStore", "json_dumps"]

BUSY_TIMEOUT_S = 30.0


def _json_default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def json_dumps(obj: Any) -> str:
    """JSON for the store's JSON columns: datetimes as ISO 8601, pydantic models dumped."""
    return json.dumps(obj, ensure_ascii=False, default=_json_default)


def _sqlite_url(url_or_path: str | Path) -> str:
    s = str(url_or_path)
    if s.startswith("sqlite:"):
        return s
    if s == ":memory:":
        return "sqlite://"
    path = Path(s).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


@dataclass
class _Fence:
    """The lease a fenced view writes under: job, holder and claim (``attempts``)."""

    job_id: str
    worker_id: str
    attempt: int
    on_lost: Callable[[], None] | None = None
    lost: bool = False

    def lose(self) -> None:
        if not self.lost:
            self.lost = True
            if self.on_lost is not None:
                self.on_lost()


class SQLiteMetadataStore(MetadataStore):
    """Metadata in one SQLite file. ``SQLiteMetadataStore(url_or_path)``.

    ``url_or_path``: a file path (parents are created), ``":memory:"``, or a SQLAlchemy URL
    (``sqlite:///...``; a ``postgresql+psycopg://...`` URL works with the same schema).
    Errors: :class:`~rlmx.errors.NotFoundError` for unknown ids, ``StoreError`` when the
    database fails (locked for longer than 30 s, corrupt, not writable).
    """

    def __init__(self, url_or_path: str | Path):
        url = _sqlite_url(url_or_path)
        self.url = url
        self._upserts: dict[tuple[Any, ...], Any] = {}
        self._fence: _Fence | None = None
        try:
            self.engine = self._make_engine(url)
            with self._write() as conn:
                t.metadata.create_all(conn)
        except SQLAlchemyError as e:
            raise StoreError(f"cannot open metadata store {self._where}: {e}") from e

    # --- engine and transactions -------------------------------------------------------
    @property
    def _where(self) -> str:
        return self.url.removeprefix("sqlite:///") if self.url.startswith("sqlite:") else self.url

    def _make_engine(self, url: str) -> Engine:
        if not url.startswith("sqlite"):
            return create_engine(url, json_serializer=json_dumps, pool_pre_ping=True)
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            json_serializer=json_dumps,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S},
            poolclass=StaticPool if memory else None,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("rlmx_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except SQLAlchemyError as e:
            raise StoreError(f"metadata store {self._where} failed: {e}") from e

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        fence = self._fence
        held = True
        try:
            with self.engine.connect() as conn:
                conn.execution_options(rlmx_begin="IMMEDIATE")
                with conn.begin() as tx:
                    if fence is not None:  # checked under the write lock: atomic with the write
                        held = self._holds(conn, fence.job_id, fence.worker_id, fence.attempt)
                    yield conn
                    if not held:
                        tx.rollback()
        except IntegrityError as e:
            raise StoreError(f"metadata store {self._where} rejected a write: {e.orig}") from e
        except SQLAlchemyError as e:
            raise StoreError(f"metadata store {self._where} failed: {e}") from e
        if fence is not None and not held:
            fence.lose()

    def _upsert(
        self,
        conn: Connection,
        table: Table,
        row: Mapping[str, Any],
        keys: list[str],
        keep: tuple[str, ...] = (),
    ) -> None:
        """Insert ``row`` (every column of ``table``) or update the existing row with the
        same ``keys``, except the columns in ``keep``. Statements are built once and reused:
        building them costs more than running them."""
        cache_key = (table.name, tuple(keys), keep, conn.dialect.name)
        stmt = self._upserts.get(cache_key)
        if stmt is None:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            base = insert(table)
            update = {c.name: base.excluded[c.name] for c in table.columns if c.name not in keys and c.name not in keep}
            stmt = base.on_conflict_do_update(index_elements=keys, set_=update)
            self._upserts[cache_key] = stmt
        conn.execute(stmt, dict(row))

    def close(self) -> None:
        """Release pooled connections (call before forking, or when done); a fenced view
        shares its store's connections and leaves them open."""
        if self._fence is None:
            self.engine.dispose()

    def __repr__(self) -> str:
        return f"SQLiteMetadataStore({self._where!r})"

    # --- documents and corpora ---------------------------------------------------------
    @staticmethod
    def _doc(row: Any, **override: Any) -> DocumentRecord:
        data = dict(row._mapping)
        data.update(override)
        return DocumentRecord.model_validate(data)

    _FIND_DOCUMENT = (
        select(t.documents)
        .where(
            t.documents.c.raw_sha256 == bindparam("raw_sha256"),
            t.documents.c.parser == bindparam("parser"),
            t.documents.c.parser_version == bindparam("parser_version"),
        )
        .order_by(t.documents.c.created_at)
        .limit(1)
    )
    _GET_DOCUMENT = select(t.documents).where(t.documents.c.doc_id == bindparam("doc_id"))

    def find_document(self, raw_sha256: str, parser: str, parser_version: str) -> DocumentRecord | None:
        """Return the Document parsed from these raw bytes by this parser version, or None."""
        params = {"raw_sha256": raw_sha256, "parser": parser, "parser_version": parser_version}
        with self._read() as conn:
            row = conn.execute(self._FIND_DOCUMENT, params).first()
        return None if row is None else self._doc(row)

    def put_document(self, doc: DocumentRecord) -> None:
        """Insert the Document, or refresh it when ``doc_id`` exists (``created_at`` kept)."""
        with self._write() as conn:
            self._upsert(conn, t.documents, doc.model_dump(), ["doc_id"], keep=("created_at",))

    def get_document(self, doc_id: str) -> DocumentRecord:
        """Return the Document. Raises ``NotFoundError``."""
        with self._read() as conn:
            row = conn.execute(self._GET_DOCUMENT, {"doc_id": doc_id}).first()
        if row is None:
            raise NotFoundError(
                f"document {doc_id!r} not found in {self._where}; valid ids are those of a "
                "corpus: store.meta.get_corpus(corpus_id).documents"
            )
        return self._doc(row)

    def put_corpus(self, corpus: CorpusRecord) -> None:
        """Insert or replace the corpus: its ordered members (with their names and source
        paths in this corpus) and failures. Every document must have been put first
        (else ``StoreError``); an existing corpus keeps its ``created_at``."""
        cid = corpus.corpus_id
        with self._write() as conn:
            self._upsert(
                conn,
                t.corpora,
                {
                    "corpus_id": cid,
                    "n_documents": len(corpus.documents),
                    "n_failures": len(corpus.failures),
                    "created_at": corpus.created_at,
                },
                ["corpus_id"],
                keep=("created_at",),
            )
            conn.execute(t.corpus_documents.delete().where(t.corpus_documents.c.corpus_id == cid))
            conn.execute(t.corpus_failures.delete().where(t.corpus_failures.c.corpus_id == cid))
            if corpus.documents:
                conn.execute(
                    t.corpus_documents.insert(),
                    [
                        {
                            "corpus_id": cid,
                            "position": i,
                            "doc_id": d.doc_id,
                            "name": d.name,
                            "source_path": d.source_path,
                        }
                        for i, d in enumerate(corpus.documents)
                    ],
                )
            if corpus.failures:
                conn.execute(
                    t.corpus_failures.insert(),
                    [{"corpus_id": cid, "position": i, **f.model_dump()} for i, f in enumerate(corpus.failures)],
                )

    def get_corpus(self, corpus_id: str) -> CorpusRecord:
        """Return the corpus; its DocumentRecords carry this corpus's names and source
        paths. Raises ``NotFoundError``."""
        m, d, f = t.corpus_documents, t.documents, t.corpus_failures
        with self._read() as conn:
            head = conn.execute(select(t.corpora).where(t.corpora.c.corpus_id == corpus_id)).first()
            if head is None:
                raise NotFoundError(
                    f"corpus {corpus_id!r} not found in {self._where}; corpus ids come from "
                    "rlmx.corpus.ingest() or corpus_from_texts() — ingest the files again"
                )
            docs = conn.execute(
                select(d, m.c.name.label("m_name"), m.c.source_path.label("m_source"))
                .join(m, m.c.doc_id == d.c.doc_id)
                .where(m.c.corpus_id == corpus_id)
                .order_by(m.c.position)
            ).all()
            fails = conn.execute(
                select(f.c.source_path, f.c.reason, f.c.media_type)
                .where(f.c.corpus_id == corpus_id)
                .order_by(f.c.position)
            ).all()
        records = []
        for row in docs:
            data = dict(row._mapping)
            data["name"] = data.pop("m_name")
            data["source_path"] = data.pop("m_source")
            records.append(DocumentRecord.model_validate(data))
        return CorpusRecord(
            corpus_id=corpus_id,
            documents=records,
            failures=[FailedDocument.model_validate(dict(r._mapping)) for r in fails],
            created_at=head.created_at,
        )

    # --- executions --------------------------------------------------------------------
    def put_execution(self, rec: ExecutionRecord) -> None:
        """Insert or replace the execution row."""
        with self._write() as conn:
            self._upsert(conn, t.executions, rec.model_dump(), ["execution_id"])

    def get_execution(self, execution_id: str) -> ExecutionRecord:
        """Return the execution. Raises ``NotFoundError``."""
        e = t.executions
        with self._read() as conn:
            row = conn.execute(select(e).where(e.c.execution_id == execution_id)).first()
        if row is None:
            raise NotFoundError(
                f"execution {execution_id!r} not found in {self._where}; list valid ids with "
                "store.meta.list_executions()"
            )
        return ExecutionRecord.model_validate(dict(row._mapping))

    def list_executions(self, *, parent_id: str | None = None, limit: int = 50) -> list[ExecutionRecord]:
        """Root executions (no parent) newest first when ``parent_id`` is None, else the
        children of ``parent_id`` in the order they were created; at most ``limit``."""
        e = t.executions
        if parent_id is None:
            q = select(e).where(e.c.parent_id.is_(None)).order_by(e.c.created_at.desc(), e.c.execution_id.desc())
        else:
            q = select(e).where(e.c.parent_id == parent_id).order_by(e.c.created_at, e.c.execution_id)
        with self._read() as conn:
            rows = conn.execute(q.limit(max(0, int(limit)))).all()
        return [ExecutionRecord.model_validate(dict(r._mapping)) for r in rows]

    def add_turn(self, execution_id: str, index: int, data: dict[str, Any]) -> None:
        """Persist turn ``index`` (committed on return); writing an index again replaces it."""
        with self._write() as conn:
            self._upsert(
                conn,
                t.turns,
                {"execution_id": execution_id, "idx": index, "data": data, "created_at": utcnow()},
                ["execution_id", "idx"],
            )

    def get_turns(self, execution_id: str) -> list[dict[str, Any]]:
        """The turns' data in index order (empty for an unknown execution)."""
        q = select(t.turns.c.data).where(t.turns.c.execution_id == execution_id).order_by(t.turns.c.idx)
        with self._read() as conn:
            return [r.data for r in conn.execute(q)]

    def add_subcall(self, execution_id: str, data: dict[str, Any]) -> None:
        """Append one sub-call record (JSON-able) to the execution."""
        with self._write() as conn:
            conn.execute(t.subcalls.insert().values(execution_id=execution_id, data=data, created_at=utcnow()))

    def get_subcalls(self, execution_id: str) -> list[dict[str, Any]]:
        """The execution's sub-call records in the order they were added."""
        s = t.subcalls
        q = select(s.c.data).where(s.c.execution_id == execution_id).order_by(s.c.id)
        with self._read() as conn:
            return [r.data for r in conn.execute(q)]

    # --- LLM cache ---------------------------------------------------------------------
    def cache_get(self, key: str) -> dict[str, Any] | None:
        """The cached value for ``key``, or None."""
        with self._read() as conn:
            row = conn.execute(select(t.llm_cache.c.value).where(t.llm_cache.c.key == key)).first()
        return None if row is None else row.value

    def cache_put(self, key: str, value: dict[str, Any]) -> None:
        """Store (or replace) the cached value for ``key``."""
        with self._write() as conn:
            self._upsert(conn, t.llm_cache, {"key": key, "value": value, "created_at": utcnow()}, ["key"])

    # --- service (issue 4) -------------------------------------------------------------
    def put_api_key(self, rec: ApiKeyRecord) -> None:
        """Insert the key (its HMAC must be new, else ``StoreError``)."""
        with self._write() as conn:
            conn.execute(t.api_keys.insert().values(**rec.model_dump()))

    def find_api_key(self, key_hmac: str) -> ApiKeyRecord | None:
        with self._read() as conn:
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.key_hmac == key_hmac)).first()
        return None if row is None else ApiKeyRecord.model_validate(dict(row._mapping))

    def revoke_api_key(self, key_id: str) -> bool:
        k = t.api_keys
        with self._write() as conn:
            res = conn.execute(
                k.update().where(k.c.key_id == key_id, k.c.revoked_at.is_(None)).values(revoked_at=utcnow())
            )
            if res.rowcount:
                return True
            return conn.execute(select(k.c.key_id).where(k.c.key_id == key_id)).first() is not None

    def list_api_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        k = t.api_keys
        q = select(k).order_by(k.c.created_at)
        if tenant is not None:
            q = q.where(k.c.tenant == tenant)
        with self._read() as conn:
            return [ApiKeyRecord.model_validate(dict(r._mapping)) for r in conn.execute(q)]

    def put_session(self, rec: SessionRecord) -> None:
        rec.updated_at = utcnow()
        with self._write() as conn:
            self._upsert(conn, t.service_sessions, rec.model_dump(), ["session_id"], keep=("created_at",))

    def get_session(self, session_id: str) -> SessionRecord:
        s = t.service_sessions
        with self._read() as conn:
            row = conn.execute(select(s).where(s.c.session_id == session_id)).first()
        if row is None:
            raise NotFoundError(f"session {session_id!r} not found")
        return SessionRecord.model_validate(dict(row._mapping))

    def list_sessions(self, tenant: str, *, limit: int = 100) -> list[SessionRecord]:
        s = t.service_sessions
        q = (
            select(s)
            .where(s.c.tenant == tenant, s.c.deleted_at.is_(None))
            .order_by(s.c.created_at.desc(), s.c.session_id.desc())
            .limit(max(0, int(limit)))
        )
        with self._read() as conn:
            return [SessionRecord.model_validate(dict(r._mapping)) for r in conn.execute(q)]

    def tenant_has_document(self, tenant: str, doc_id: str) -> bool:
        s, m = t.service_sessions, t.corpus_documents
        q = (
            select(m.c.doc_id)
            .join(s, s.c.corpus_id == m.c.corpus_id)
            .where(
                s.c.tenant == tenant,
                s.c.deleted_at.is_(None),
                or_(s.c.expires_at.is_(None), s.c.expires_at > utcnow()),
                m.c.doc_id == doc_id,
            )
            .limit(1)
        )
        with self._read() as conn:
            return conn.execute(q).first() is not None

    def put_service_execution(self, rec: ServiceExecutionRecord) -> None:
        with self._write() as conn:
            self._upsert(conn, t.service_executions, rec.model_dump(), ["execution_id"], keep=("created_at",))

    def get_service_execution(self, execution_id: str) -> ServiceExecutionRecord | None:
        e = t.service_executions
        with self._read() as conn:
            row = conn.execute(select(e).where(e.c.execution_id == execution_id)).first()
        return None if row is None else ServiceExecutionRecord.model_validate(dict(row._mapping))

    def delete_subcalls_after(self, execution_id: str, turn: int) -> int:
        s = t.subcalls
        with self._write() as conn:
            rows = conn.execute(select(s.c.id, s.c.data).where(s.c.execution_id == execution_id)).all()
            ids = [r.id for r in rows if int((r.data or {}).get("turn") or 0) > turn]
            if ids:
                conn.execute(s.delete().where(s.c.id.in_(ids)))
        return len(ids)

    def enqueue_job(self, rec: JobRecord) -> None:
        with self._write() as conn:
            conn.execute(t.jobs.insert().values(**rec.model_dump()))

    def get_job(self, job_id: str) -> JobRecord | None:
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

    def claim_job(self, worker_id: str, lease_s: float, kinds: list[str] | None = None) -> JobRecord | None:
        """Claim by update: pick the oldest claimable job, then update it guarded by the same
        condition (one transaction, ``BEGIN IMMEDIATE`` on SQLite; on PostgreSQL the guard
        makes a lost race update no row). Lease expiry uses the database's clock."""
        j = t.jobs
        with self._write() as conn:
            claimable = or_(
                j.c.state == "QUEUED",
                and_(j.c.state == "RUNNING", j.c.lease_expires_at < self._db_now(conn)),
            )
            q = select(j.c.job_id).where(claimable).order_by(j.c.created_at, j.c.job_id).limit(1)
            if kinds:
                q = q.where(j.c.kind.in_(kinds))
            row = conn.execute(q).first()
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

    @staticmethod
    def _lease(job_id: str, worker_id: str, attempt: int | None) -> list[ColumnElement[bool]]:
        j = t.jobs
        cond = [j.c.job_id == job_id, j.c.lease_owner == worker_id, j.c.state == "RUNNING"]
        if attempt is not None:
            cond.append(j.c.attempts == attempt)
        return cond

    def _holds(self, conn: Connection, job_id: str, worker_id: str, attempt: int | None) -> bool:
        q = select(t.jobs.c.job_id).where(*self._lease(job_id, worker_id, attempt)).with_for_update()
        return conn.execute(q).first() is not None

    def holds_lease(self, job_id: str, worker_id: str, attempt: int | None = None) -> bool:
        with self._read() as conn:
            return self._holds(conn, job_id, worker_id, attempt)

    def fenced(
        self, job_id: str, worker_id: str, attempt: int, on_lost: Callable[[], None] | None = None
    ) -> SQLiteMetadataStore:
        """A view of this store (same connections) whose every write is committed only while
        ``worker_id`` holds ``job_id`` under claim ``attempt`` — checked in the write's own
        transaction. A write after the lease was lost is rolled back (it changes nothing)
        and ``on_lost()`` is called once."""
        view = copy.copy(self)
        view._fence = _Fence(job_id, worker_id, attempt, on_lost)
        return view

    @property
    def lease_lost(self) -> bool:
        """A fenced view: a write was dropped because its lease was lost."""
        return self._fence is not None and self._fence.lost

    def renew_lease(self, job_id: str, worker_id: str, lease_s: float, attempt: int | None = None) -> bool:
        j = t.jobs
        with self._write() as conn:
            res = conn.execute(
                j.update()
                .where(*self._lease(job_id, worker_id, attempt))
                .values(lease_expires_at=self._db_now(conn, lease_s), updated_at=utcnow())
            )
        return bool(res.rowcount)

    def release_job(self, job_id: str, worker_id: str, attempt: int | None = None) -> bool:
        j = t.jobs
        with self._write() as conn:
            res = conn.execute(
                j.update()
                .where(*self._lease(job_id, worker_id, attempt))
                .values(state="QUEUED", lease_owner=None, lease_expires_at=None, updated_at=utcnow())
            )
        return bool(res.rowcount)

    def finish_job(
        self, job_id: str, worker_id: str | None, error: str | None = None, attempt: int | None = None
    ) -> bool:
        j = t.jobs
        cond: list[ColumnElement[bool]] = [j.c.job_id == job_id]
        if worker_id is not None:
            cond = self._lease(job_id, worker_id, attempt)
        with self._write() as conn:
            res = conn.execute(
                j.update().where(*cond).values(state="DONE", lease_expires_at=None, error=error, updated_at=utcnow())
            )
        return bool(res.rowcount)

    def request_cancel(self, job_id: str) -> JobRecord | None:
        j = t.jobs
        with self._write() as conn:
            row = conn.execute(select(j).where(j.c.job_id == job_id)).first()
            if row is None:
                return None
            before = JobRecord.model_validate(dict(row._mapping))
            values: dict[str, Any] = {"cancel_requested": True, "updated_at": utcnow()}
            if before.state == "QUEUED":
                values.update(state="DONE", error="cancelled")
            conn.execute(j.update().where(j.c.job_id == job_id).values(**values))
        return before

    def add_event(self, execution_id: str, kind: str, data: dict[str, Any]) -> int:
        with self._write() as conn:
            res = conn.execute(
                t.events.insert().values(execution_id=execution_id, kind=kind, data=data, created_at=utcnow())
            )
            pk = res.inserted_primary_key
        return int(pk[0]) if pk else 0

    def get_events(self, execution_id: str, *, after: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        e = t.events
        q = (
            select(e.c.id, e.c.kind, e.c.data, e.c.created_at)
            .where(e.c.execution_id == execution_id, e.c.id > after)
            .order_by(e.c.id)
            .limit(max(1, int(limit)))
        )
        with self._read() as conn:
            return [
                {"id": r.id, "kind": r.kind, "data": r.data, "created_at": r.created_at.isoformat()}
                for r in conn.execute(q)
            ]
