"""Compatibility module: the SQL metadata store used to be SQLite-only and live here.

``SQLiteMetadataStore`` is :class:`rlmx.store.sql.SQLMetadataStore` (SQLite or PostgreSQL).
"""

from __future__ import annotations

from rlmx.store.sql import BUSY_TIMEOUT_S, SQLMetadataStore, json_dumps

__all__ = ["BUSY_TIMEOUT_S", "SQLMetadataStore", "SQLiteMetadataStore", "json_dumps"]

SQLiteMetadataStore = SQLMetadataStore
