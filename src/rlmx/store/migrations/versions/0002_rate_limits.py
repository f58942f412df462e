"""Rate limits shared by every API server: the ``rate_limits`` table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Before this revision the table was created by the service at start-up
(``create_all(checkfirst=True)``), so a database may already have it: it is then left alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["downgrade", "upgrade"]

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``rate_limits`` unless it exists."""
    if "rate_limits" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    """Drop ``rate_limits`` (the current windows are lost)."""
    op.drop_table("rate_limits")
