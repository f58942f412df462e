"""The SQL :class:`~rlmx.store.base.MetadataStore`: SQLAlchemy 2 Core over SQLite or
PostgreSQL (psycopg 3), one schema (:mod:`rlmx.store.schema`) migrated by alembic
(:mod:`rlmx.store.migrate`).

The queries are plain SQLAlchemy Core; only upserts are dialect-specific (``INSERT ... ON
CONFLICT``, shared by SQLite and PostgreSQL). This module holds documents, corpora,
executions and the LLM cache; :mod:`rlmx.store.sql_core` the engine, transactions and
fencing, :mod:`rlmx.store.sql_service` the service tables, :mod:`rlmx.store.sql_jobs` the
work queue.

Several processes may open the same SQLite file: WAL mode, ``BEGIN IMMEDIATE`` writes and a
30 s busy timeout (see :mod:`rlmx.store.sql_core`). Any number of servers and workers may
share one PostgreSQL database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import SQLAlchemyError

from rlmx.errors import NotFoundError, StoreError
from rlmx.store import schema as t
from rlmx.store.base import CorpusRecord, DocumentRecord, ExecutionRecord, FailedDocument, utcnow
from rlmx.store.sql_core import BUSY_TIMEOUT_S, database_url, json_dumps
from rlmx.store.sql_jobs import JobsMixin
from rlmx.store.sql_service import ServiceMixin

__all__ = ["BUSY_TIMEOUT_S", "SQLMetadataStore", "json_dumps"]


class SQLMetadataStore(ServiceMixin, JobsMixin):
    """Metadata in SQLite or PostgreSQL. ``SQLMetadataStore(url_or_path, migrate=False)``.

    ``url_or_path``: a SQLite file path (missing parent folders are created ``0700``, the file
    ``0600``), ``":memory:"``, ``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST:PORT/DB``
    (see :func:`~rlmx.store.sql_core.database_url`).

    Schema: a SQLite store is upgraded to the latest alembic revision when opened. A
    PostgreSQL store is checked: when it is empty or behind, ``migrate=True`` upgrades it
    (under an advisory lock: several servers may start at once), ``migrate=False`` raises
    ``StoreError`` asking to run ``rlmx db upgrade``.

    Errors: :class:`~rlmx.errors.ConfigError` for a malformed URL,
    :class:`~rlmx.errors.NotFoundError` for unknown ids, ``StoreError`` when the database
    fails (unreachable, locked for longer than 30 s, corrupt, not writable, wrong revision).
    """

    def __init__(self, url_or_path: str | Path, *, migrate: bool = False):
        from rlmx.store import migrate as migrations

        url = database_url(url_or_path)
        try:
            self._open_engine(url)
        except SQLAlchemyError as e:
            raise StoreError(f"cannot open metadata store {url_or_path}: {e}") from e
        try:
            if self.dialect == "sqlite":
                with self._write() as conn:  # BEGIN IMMEDIATE: concurrent openers wait
                    migrations.upgrade_connection(conn, where=self._where)
            else:
                migrations.ensure_current(self.engine, migrate=migrate, where=self._where)
        except SQLAlchemyError as e:
            self.engine.dispose()
            raise StoreError(
                f"cannot open metadata store {self._where}: {e}; check the URL and that the database is reachable"
            ) from e
        except BaseException:
            self.engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"SQLMetadataStore({self._where!r})"

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

    def count_turns(self, execution_id: str) -> int:
        """How many turns the execution has committed (0 for an unknown one), without reading them."""
        q = select(func.count()).select_from(t.turns).where(t.turns.c.execution_id == execution_id)
        with self._read() as conn:
            return int(conn.execute(q).scalar_one())

    def add_subcall(self, execution_id: str, data: dict[str, Any]) -> None:
        """Append one sub-call record (JSON-able) to the execution."""
        self.add_subcalls([(execution_id, data)])

    def add_subcalls(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        """Append ``(execution_id, data)`` sub-call records in order, in one transaction."""
        if not rows:
            return
        now = utcnow()
        with self._write() as conn:
            conn.execute(t.subcalls.insert(), [{"execution_id": e, "data": d, "created_at": now} for e, d in rows])

    def get_subcalls(self, execution_id: str) -> list[dict[str, Any]]:
        """The execution's sub-call records in the order they were added."""
        s = t.subcalls
        q = select(s.c.data).where(s.c.execution_id == execution_id).order_by(s.c.id)
        with self._read() as conn:
            return [r.data for r in conn.execute(q)]

    # --- LLM cache ---------------------------------------------------------------------
    def cache_get(self, key: str) -> dict[str, Any] | None:
        """The cached value for ``key``, or None."""
        return self.cache_get_many([key])[0]

    def cache_put(self, key: str, value: dict[str, Any]) -> None:
        """Store (or replace) the cached value for ``key``."""
        self.cache_put_many([(key, value)])

    def cache_get_many(self, keys: list[str]) -> list[dict[str, Any] | None]:
        """The cached values of ``keys`` in order (None where absent), in one read."""
        found: dict[str, dict[str, Any]] = {}
        with self._read() as conn:
            for i in range(0, len(keys), 500):  # bound the IN list (SQLite's variable limit)
                q = select(t.llm_cache.c.key, t.llm_cache.c.value).where(t.llm_cache.c.key.in_(keys[i : i + 500]))
                found.update((r.key, r.value) for r in conn.execute(q))
        return [found.get(k) for k in keys]

    def cache_put_many(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        """Store (or replace) ``(key, value)`` pairs, in one transaction."""
        if not items:
            return
        now = utcnow()
        with self._write() as conn:
            for key, value in items:
                self._upsert(conn, t.llm_cache, {"key": key, "value": value, "created_at": now}, ["key"])
