"""A session's ingestion progress and summary: the ``service_session_ingest`` table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

One row per session whose ingestion has started: files parsed so far and in all, then the
persisted ingestion summary. Sessions ingested before this revision have no row (their
summary is recomputed from their per-document entries).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["downgrade", "upgrade"]

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``service_session_ingest`` unless it exists."""
    if "service_session_ingest" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table(
        "service_session_ingest",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("documents_parsed", sa.Integer, nullable=False),
        sa.Column("documents_total", sa.Integer),
        sa.Column("summary", sa.JSON),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop ``service_session_ingest`` (progress and summaries are lost)."""
    op.drop_table("service_session_ingest")
