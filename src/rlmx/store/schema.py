"""SQLAlchemy Core tables of the metadata store (one schema for SQLite and PostgreSQL).

* ``documents`` — content-addressed Documents (:class:`~rlmx.store.base.DocumentRecord`);
  ``name``/``source_path`` are those of the first ingestion, corpora keep their own.
* ``corpora``, ``corpus_documents`` (ordered membership with the display name and source
  path *per corpus*), ``corpus_failures``.
* ``executions``, ``turns`` (one row per ``(execution_id, idx)``), ``subcalls``.
* ``llm_cache`` — key → JSON value.
* Service tables (issue 4, :mod:`rlmx.service`): ``api_keys`` (HMAC of each key, never the
  key), ``service_sessions`` (a tenant's session: status, documents, corpus),
  ``service_executions`` (which tenant and session an execution belongs to, and its
  request), ``jobs`` (the work queue: claim by update, lease + heartbeat), ``events``
  (progress events of an execution tree, for server-sent events), ``rate_limits`` (per-key
  windows of the API's rate limits, shared by every server), ``service_session_ingest`` (a
  session's ingestion progress and summary).

Timestamps are stored in UTC (:class:`UTCDateTime`) and come back timezone-aware. Sizes
and autoincrement ids are 64-bit on PostgreSQL (:data:`BigInt`; SQLite integers already are).

The tables are created by alembic migrations (:mod:`rlmx.store.migrations`), never by
``metadata.create_all``: a change here needs a new revision in ``migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = [
    "BigInt",
    "UTCDateTime",
    "api_keys",
    "corpora",
    "corpus_documents",
    "corpus_failures",
    "documents",
    "events",
    "executions",
    "jobs",
    "llm_cache",
    "metadata",
    "rate_limits",
    "service_executions",
    "service_session_ingest",
    "service_sessions",
    "subcalls",
    "turns",
]


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


BigInt = Integer().with_variant(BigInteger(), "postgresql")
"""INTEGER on SQLite (a 64-bit rowid alias for primary keys), BIGINT/BIGSERIAL on PostgreSQL."""

metadata = MetaData()

documents = Table(
    "documents",
    metadata,
    Column("doc_id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("source_path", Text, nullable=False),
    Column("media_type", String(128), nullable=False),
    Column("size_bytes", BigInt, nullable=False),
    Column("raw_sha256", String(64), nullable=False),
    Column("text_sha256", String(64), nullable=False),
    Column("length_chars", BigInt, nullable=False),
    Column("parser", String(64), nullable=False),
    Column("parser_version", String(64), nullable=False),
    Column("encoding", String(64)),
    Column("text_key", Text, nullable=False),
    Column("index_key", Text),
    Column("meta", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("documents_content", "raw_sha256", "parser", "parser_version"),
)

corpora = Table(
    "corpora",
    metadata,
    Column("corpus_id", String(64), primary_key=True),
    Column("n_documents", Integer, nullable=False),
    Column("n_failures", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

corpus_documents = Table(
    "corpus_documents",
    metadata,
    Column(
        "corpus_id",
        String(64),
        ForeignKey("corpora.corpus_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True),
    Column("doc_id", String(64), ForeignKey("documents.doc_id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("source_path", Text, nullable=False),
)

corpus_failures = Table(
    "corpus_failures",
    metadata,
    Column(
        "corpus_id",
        String(64),
        ForeignKey("corpora.corpus_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True),
    Column("source_path", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("media_type", String(128)),
)

executions = Table(
    "executions",
    metadata,
    Column("execution_id", String(64), primary_key=True),
    Column("corpus_id", String(64), nullable=False),
    Column("question", Text, nullable=False),
    Column("mode", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("parent_id", String(64), index=True),
    Column("root_id", String(64), index=True),
    Column("depth", Integer, nullable=False),
    Column("root_model", Text, nullable=False),
    Column("sub_model", Text, nullable=False),
    Column("answer", Text),
    Column("citations", JSON, nullable=False),
    Column("fields", JSON),
    Column("usage", JSON, nullable=False),
    Column("budgets", JSON, nullable=False),
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("finished_at", UTCDateTime),
    Column("previous_id", String(64), index=True),  # revision 0004: last, as ALTER TABLE adds it
)

turns = Table(
    "turns",
    metadata,
    Column("execution_id", String(64), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("data", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

subcalls = Table(
    "subcalls",
    metadata,
    Column("id", BigInt, primary_key=True, autoincrement=True),
    Column("execution_id", String(64), nullable=False, index=True),
    Column("data", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

llm_cache = Table(
    "llm_cache",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# --- service (issue 4) -------------------------------------------------------------------

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("tenant", String(128), nullable=False, index=True),
    Column("key_hmac", String(128), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

service_sessions = Table(
    "service_sessions",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("tenant", String(128), nullable=False, index=True),
    Column("status", String(32), nullable=False),
    Column("corpus_id", String(64)),
    Column("inputs", JSON, nullable=False),
    Column("documents", JSON, nullable=False),
    Column("options", JSON, nullable=False),
    Column("error", Text),
    Column("upload_dir", Text),
    Column("expires_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime),
)

service_executions = Table(
    "service_executions",
    metadata,
    Column("execution_id", String(64), primary_key=True),
    Column("tenant", String(128), nullable=False, index=True),
    Column("session_id", String(64), nullable=False, index=True),
    Column("mode", String(32), nullable=False),
    Column("request", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("ref_id", String(64), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("lease_owner", String(128)),
    Column("lease_expires_at", UTCDateTime),
    Column("attempts", Integer, nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", BigInt, primary_key=True, autoincrement=True),
    Column("execution_id", String(64), nullable=False, index=True),
    Column("kind", String(64), nullable=False),
    Column("data", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", Text, primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),  # Unix seconds, database clock
)
"""Per-key rate-limit windows shared by every API server (:mod:`rlmx.service.ratelimit_storage`):
hits in the current window and when it ends (migration 0002)."""

service_session_ingest = Table(
    "service_session_ingest",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("documents_parsed", Integer, nullable=False),
    Column("documents_total", Integer),
    Column("summary", JSON),
    Column("updated_at", UTCDateTime, nullable=False),
)
"""A session's ingestion as it goes (migration 0003): files parsed so far and in all (None
until the files are listed), then the summary of the finished ingestion (kept, skipped by
reason, duplicates, aliases, failed by reason). Written by the ingest job on its own row, so
progress updates never rewrite the session row."""
