"""Initial schema: the tables of rlmx 0.x (created until then by ``metadata.create_all``).

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written by hand to reproduce :mod:`rlmx.store.schema` as it was: tables, columns, keys and
indexes (``ix_<table>_<column>`` for ``index=True`` columns). A table that already exists is
left alone, so a store written by ``create_all`` is adopted as is (and one written by an
older release gets the tables it lacks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["downgrade", "upgrade"]

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_BIG = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def _documents() -> None:
    op.create_table(
        "documents",
        sa.Column("doc_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("media_type", sa.String(128), nullable=False),
        sa.Column("size_bytes", _BIG, nullable=False),
        sa.Column("raw_sha256", sa.String(64), nullable=False),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("length_chars", _BIG, nullable=False),
        sa.Column("parser", sa.String(64), nullable=False),
        sa.Column("parser_version", sa.String(64), nullable=False),
        sa.Column("encoding", sa.String(64)),
        sa.Column("text_key", sa.Text, nullable=False),
        sa.Column("index_key", sa.Text),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("documents_content", "documents", ["raw_sha256", "parser", "parser_version"])


def _corpora() -> None:
    op.create_table(
        "corpora",
        sa.Column("corpus_id", sa.String(64), primary_key=True),
        sa.Column("n_documents", sa.Integer, nullable=False),
        sa.Column("n_failures", sa.Integer, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )


def _corpus_documents() -> None:
    op.create_table(
        "corpus_documents",
        sa.Column("corpus_id", sa.String(64), sa.ForeignKey("corpora.corpus_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("doc_id", sa.String(64), sa.ForeignKey("documents.doc_id"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("source_path", sa.Text, nullable=False),
    )


def _corpus_failures() -> None:
    op.create_table(
        "corpus_failures",
        sa.Column("corpus_id", sa.String(64), sa.ForeignKey("corpora.corpus_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("media_type", sa.String(128)),
    )


def _executions() -> None:
    op.create_table(
        "executions",
        sa.Column("execution_id", sa.String(64), primary_key=True),
        sa.Column("corpus_id", sa.String(64), nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.String(64)),
        sa.Column("root_id", sa.String(64)),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.Column("root_model", sa.Text, nullable=False),
        sa.Column("sub_model", sa.Text, nullable=False),
        sa.Column("answer", sa.Text),
        sa.Column("citations", sa.JSON, nullable=False),
        sa.Column("fields", sa.JSON),
        sa.Column("usage", sa.JSON, nullable=False),
        sa.Column("budgets", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("finished_at", _TS),
    )
    for col in ("parent_id", "root_id", "created_at"):
        op.create_index(f"ix_executions_{col}", "executions", [col])


def _turns() -> None:
    op.create_table(
        "turns",
        sa.Column("execution_id", sa.String(64), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )


def _subcalls() -> None:
    op.create_table(
        "subcalls",
        sa.Column("id", _BIG, primary_key=True, autoincrement=True),
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_subcalls_execution_id", "subcalls", ["execution_id"])


def _llm_cache() -> None:
    op.create_table(
        "llm_cache",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )


def _api_keys() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("key_hmac", sa.String(128), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS),
        sa.UniqueConstraint("key_hmac"),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant"])


def _service_sessions() -> None:
    op.create_table(
        "service_sessions",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("corpus_id", sa.String(64)),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("documents", sa.JSON, nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("upload_dir", sa.Text),
        sa.Column("expires_at", _TS),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("deleted_at", _TS),
    )
    op.create_index("ix_service_sessions_tenant", "service_sessions", ["tenant"])
    op.create_index("ix_service_sessions_created_at", "service_sessions", ["created_at"])


def _service_executions() -> None:
    op.create_table(
        "service_executions",
        sa.Column("execution_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_service_executions_tenant", "service_executions", ["tenant"])
    op.create_index("ix_service_executions_session_id", "service_executions", ["session_id"])


def _jobs() -> None:
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ref_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_expires_at", _TS),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_jobs_state", "jobs", ["state"])


def _events() -> None:
    op.create_table(
        "events",
        sa.Column("id", _BIG, primary_key=True, autoincrement=True),
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_events_execution_id", "events", ["execution_id"])


_TABLES: list[tuple[str, Callable[[], None]]] = [
    ("documents", _documents),
    ("corpora", _corpora),
    ("corpus_documents", _corpus_documents),
    ("corpus_failures", _corpus_failures),
    ("executions", _executions),
    ("turns", _turns),
    ("subcalls", _subcalls),
    ("llm_cache", _llm_cache),
    ("api_keys", _api_keys),
    ("service_sessions", _service_sessions),
    ("service_executions", _service_executions),
    ("jobs", _jobs),
    ("events", _events),
]


def upgrade() -> None:
    """Create the tables (and their indexes) that do not exist yet."""
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, create in _TABLES:
        if name not in existing:
            create()


def downgrade() -> None:
    """Drop every table of the metadata store (its data is lost)."""
    for name, _create in reversed(_TABLES):
        op.drop_table(name)
