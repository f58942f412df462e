"""Conversations: ``executions.previous_id`` links a follow-up to the execution it follows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

A follow-up question on the same corpus is its own execution (own budget and trace) whose
REPL starts from the previous execution's last snapshot; ``previous_id`` names that
execution. Executions written before this revision are not follow-ups (NULL).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["downgrade", "upgrade"]

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``executions.previous_id`` (indexed) unless it exists."""
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("executions")}
    if "previous_id" in columns:
        return
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("previous_id", sa.String(64), nullable=True))
        batch.create_index("ix_executions_previous_id", ["previous_id"])


def downgrade() -> None:
    """Drop ``executions.previous_id`` (the conversation links are lost)."""
    with op.batch_alter_table("executions") as batch:
        batch.drop_index("ix_executions_previous_id")
        batch.drop_column("previous_id")
