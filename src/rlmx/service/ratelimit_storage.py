"""A `limits` storage in the metadata database, so per-key rate limits hold across API servers.

Every API server of one deployment shares the metadata database (the SQLite file when
embedded, PostgreSQL at scale), so the counters live there, in one small table::

    rate_limits(key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires_at FLOAT NOT NULL)

``key`` is the limit's key (``item.key_for(...)``), ``count`` the hits in the current window,
``expires_at`` when the window ends, in Unix seconds **by the database's clock** (SQLite
``julianday('now')``, PostgreSQL ``statement_timestamp()``), so servers on several hosts need
no synchronised clocks. A hit is one atomic upsert (``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING``: SQLite >= 3.35, PostgreSQL), which starts a new window when the old one has
expired; there is no read-modify-write race, in one process or many.

The table is part of the metadata store's schema (:data:`rlmx.store.schema.rate_limits`,
alembic migration 0002); a database that predates it still gets it at start-up
(``create(checkfirst=True)``). Expired rows are
reused by the next hit of the same key, never swept: there is one row per key and limit.

The storage implements what :class:`limits.strategies.FixedWindowRateLimiter` needs (``incr``,
``get``, ``get_expiry``, ``check``, ``reset``, ``clear``); the moving-window and
sliding-window-counter strategies are not supported.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from limits.storage import Storage
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    Integer,
    Text,
    bindparam,
    case,
    cast,
    delete,
    extract,
    func,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from ..errors import ConfigError, StoreError
from ..store import schema
from ..store.base import MetadataStore

__all__ = ["SQLRateLimitStorage", "rate_limit_metadata", "rate_limits", "storage_for"]

rate_limit_metadata = schema.metadata
"""The metadata store's schema, which holds :data:`rate_limits` (migration 0002)."""

rate_limits = schema.rate_limits

_DIALECTS = ("sqlite", "postgresql")


def _db_now(dialect: str) -> ColumnElement[float]:
    """The database's current time in Unix seconds (float), the same for the whole statement."""
    if dialect == "sqlite":  # 'now' is fixed for one sqlite3_step(); millisecond precision
        return (func.julianday("now") - literal(2440587.5)) * literal(86400.0)
    return cast(extract("epoch", func.statement_timestamp()), Float)


class SQLRateLimitStorage(Storage):
    """Rate-limit counters in a SQLite or PostgreSQL database, through SQLAlchemy ``engine``.

    Use it with :class:`limits.strategies.FixedWindowRateLimiter`. ``engine`` should be the
    metadata store's (``open_store().meta.engine``): on SQLite its connections wait for the
    write lock (busy timeout) and take it at ``BEGIN IMMEDIATE``. Creates the
    ``rate_limits`` table when missing. Raises :class:`~rlmx.errors.ConfigError` for another
    database kind and :class:`~rlmx.errors.StoreError` when the database fails (every
    method; with ``wrap_exceptions=True``, limits' ``StorageError`` wrapping it instead).
    """

    STORAGE_SCHEME = None  # constructed directly, never from a limits storage URI

    def __init__(self, engine: Engine, wrap_exceptions: bool = False) -> None:
        dialect = engine.dialect.name
        if dialect not in _DIALECTS:
            raise ConfigError(
                f"rate limits in the database support SQLite and PostgreSQL, not {dialect!r}; "
                "set RLMX_DATABASE_URL to a sqlite:/// or postgresql+psycopg:// URL"
            )
        super().__init__(None, wrap_exceptions=wrap_exceptions)
        self.engine = engine
        self._now = _db_now(dialect)
        self._incr = self._build_incr(dialect)
        self._create_table()

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        """What limits wraps in ``StorageError`` when ``wrap_exceptions`` is set."""
        return StoreError

    # --- plumbing ----------------------------------------------------------------------
    @contextmanager
    def _conn(self, write: bool) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                if write:  # SQLite: take the write lock at BEGIN (the store's engine honours this)
                    conn.execution_options(rlmx_begin="IMMEDIATE")
                with conn.begin():
                    yield conn
        except SQLAlchemyError as e:
            raise StoreError(
                f"the rate-limit table in {self.engine.url.render_as_string(hide_password=True)} failed: {e}; "
                "check that the database is reachable and writable"
            ) from e

    def _create_table(self) -> None:
        for attempt in range(2):  # two servers starting together on PostgreSQL may race
            try:
                with self._conn(write=True) as conn:
                    rate_limits.create(conn, checkfirst=True)
                return
            except StoreError:
                if attempt:
                    raise

    def _build_incr(self, dialect: str) -> Any:
        """``INSERT ... ON CONFLICT DO UPDATE ... RETURNING count``: one atomic statement."""
        t = rate_limits
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        base = insert(t).values(
            key=bindparam("key", type_=Text),
            count=bindparam("amount", type_=Integer),
            expires_at=self._now + bindparam("expiry", type_=Float),
        )
        ended = t.c.expires_at <= self._now
        return base.on_conflict_do_update(
            index_elements=[t.c.key],
            set_={
                "count": case((ended, base.excluded["count"]), else_=t.c["count"] + base.excluded["count"]),
                "expires_at": case((ended, base.excluded.expires_at), else_=t.c.expires_at),
            },
        ).returning(t.c["count"])

    # --- the limits Storage contract -----------------------------------------------------
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to ``key``'s count and return the new count. A key that is absent
        or whose window has ended starts a new window of ``expiry`` seconds at ``amount``."""
        with self._conn(write=True) as conn:
            count = conn.execute(self._incr, {"key": key, "amount": amount, "expiry": float(expiry)}).scalar_one()
        return int(count)

    def get(self, key: str) -> int:
        """The count of ``key`` in its current window; 0 when absent or expired."""
        with self._conn(write=False) as conn:
            value = conn.execute(
                select(rate_limits.c["count"]).where(rate_limits.c.key == key, rate_limits.c.expires_at > self._now)
            ).scalar()
        return int(value or 0)

    def get_expiry(self, key: str) -> float:
        """When ``key``'s window ends, in Unix seconds **of this host's clock** (what limits'
        strategies compare with ``time.time()``): the time left by the database's clock,
        added to ``time.time()``. ``time.time()`` when absent or expired."""
        with self._conn(write=False) as conn:
            left = conn.execute(
                select(rate_limits.c.expires_at - self._now).where(
                    rate_limits.c.key == key, rate_limits.c.expires_at > self._now
                )
            ).scalar()
        return time.time() + max(float(left or 0.0), 0.0)

    def check(self) -> bool:
        """True when the database answers."""
        try:
            with self._conn(write=False) as conn:
                conn.execute(select(literal(1)))
            return True
        except StoreError:
            return False

    def reset(self) -> int | None:
        """Delete every counter; returns how many rows were deleted."""
        with self._conn(write=True) as conn:
            return int(conn.execute(delete(rate_limits)).rowcount)

    def clear(self, key: str) -> None:
        """Delete ``key``'s counter (its next hit starts a new window)."""
        with self._conn(write=True) as conn:
            conn.execute(delete(rate_limits).where(rate_limits.c.key == key))


def storage_for(meta: MetadataStore) -> SQLRateLimitStorage:
    """The shared rate-limit storage in the database of metadata store ``meta`` (which must
    have an ``engine``: the SQL stores do). Raises :class:`~rlmx.errors.ConfigError` for a
    store without one, ``StoreError`` when the table cannot be created."""
    engine = getattr(meta, "engine", None)
    if not isinstance(engine, Engine):
        raise ConfigError(
            f"the metadata store {meta!r} has no SQL database to keep rate limits in; "
            "use a SQL metadata store (RLMX_DATABASE_URL: sqlite:/// or postgresql+psycopg://)"
        )
    return SQLRateLimitStorage(engine)
