"""Engine, transactions and fencing of :class:`~rlmx.store.sql.SQLMetadataStore`.

:class:`SQLCore` holds what every part of the SQL store shares: the SQLAlchemy engine
(SQLite or PostgreSQL/psycopg 3), read and write transactions, upserts, and fenced views
(:meth:`SQLCore.fenced_by`). The table queries live in :mod:`rlmx.store.sql` (documents,
executions, cache), :mod:`rlmx.store.sql_service` and :mod:`rlmx.store.sql_jobs`.

SQLite: WAL mode, every write transaction begins with ``BEGIN IMMEDIATE`` (no lock upgrade
deadlocks), a busy timeout of 30 s; the file is created ``0600`` in a folder created
``0700``. PostgreSQL: a connection pool with ``pool_pre_ping``, writes in ordinary
(READ COMMITTED) transactions.
"""

from __future__ import annotations

import copy
import json
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePath
from typing import Any, Self

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from rlmx.errors import ConfigError, StoreError
from rlmx.store.base import Fence, MetadataStore

__all__ = ["BUSY_TIMEOUT_S", "SQLCore", "database_url", "json_dumps", "redact_url"]

BUSY_TIMEOUT_S = 30.0
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:(?![\\/])|^[A-Za-z][A-Za-z0-9+.-]+:/[^/]")
PG_CONNECT_TIMEOUT_S = 10


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


def database_url(url_or_path: str | Path, *, create_folder: bool = True) -> str:
    """The SQLAlchemy URL of a metadata store given as a file path, ``":memory:"``,
    ``sqlite:///PATH`` or ``postgresql[+psycopg]://USER:PASSWORD@HOST:PORT/DB``
    (``postgres://`` and ``postgresql://`` use psycopg 3).

    A file path is resolved; with ``create_folder`` its missing parents are created
    (mode ``0700``). Raises :class:`~rlmx.errors.ConfigError` for a malformed URL or a
    database other than SQLite and PostgreSQL.
    """
    s = str(url_or_path).strip()
    hint = "use a file path, sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"
    if s == ":memory:":
        return "sqlite://"
    if not s:
        raise ConfigError(f"empty database URL; {hint}")
    if "://" not in s and not s.startswith("sqlite:"):
        if _SCHEME.match(s):  # "postgresql:/h/db", "postgres:": a URL, not a file name
            raise ConfigError(f"malformed database URL {redact_url(s)!r}; {hint}")
        path = Path(s).expanduser().resolve()
        if create_folder:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return f"sqlite:///{path}"
    try:
        url = make_url(s)
    except (ArgumentError, ValueError) as e:
        raise ConfigError(f"malformed database URL {redact_url(s)!r}: {e}; {hint}") from e
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return s
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        if not url.database:
            raise ConfigError(f"database URL {redact_url(s)!r} names no database; {hint}")
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ConfigError(f"unsupported database URL {redact_url(s)!r} (only SQLite and PostgreSQL/psycopg 3); {hint}")


def redact_url(url: str) -> str:
    """``url`` with its password hidden (for messages); unparseable text comes back as is."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _wal(cur: Any) -> None:
    """Put the SQLite file in WAL mode (persistent: a file already in it is left alone).
    Switching needs the file to itself, and SQLite answers "database is locked" at once,
    without its busy handler, when another process opens the new file at the same moment:
    retry for up to ``BUSY_TIMEOUT_S``."""
    import sqlite3
    import time

    if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _make_private(path: Path) -> None:
    """Create the SQLite file ``0600`` when missing; tighten it and its ``-wal``/``-shm``
    files (SQLite gives them the database file's mode) when we own them.

    An existing database file is never opened here: closing any descriptor of a file drops
    every POSIX lock this process holds on it, so an ``open``/``close`` while another
    connection of this process is in a transaction would silently release SQLite's locks
    and let other processes overwrite its writes (https://sqlite.org/howtocorrupt.html,
    section 2.2). A missing file is created exclusively (``O_EXCL``): nothing of ours holds
    it yet."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        pass  # exists (or another process just made it): only its mode is tightened below
    except OSError:
        return  # not creatable here: SQLite reports the real error
    else:
        os.close(fd)
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            st = p.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077:
                os.chmod(p, stat.S_IMODE(st.st_mode) & 0o600)
        except OSError:
            pass


@dataclass
class _FenceState:
    """A fence a view writes under, its ``on_lost`` callback and whether it was lost."""

    fence: Fence
    on_lost: Callable[[], None] | None = None
    lost: bool = False

    def lose(self) -> None:
        if not self.lost:
            self.lost = True
            if self.on_lost is not None:
                self.on_lost()


class SQLCore(MetadataStore):
    """Engine and transactions shared by the parts of the SQL store (not used alone).

    Subclasses call :meth:`_open_engine` from ``__init__``; ``self.url`` is the SQLAlchemy
    URL, ``self.engine`` the engine, ``self.dialect`` ``"sqlite"`` or ``"postgresql"``.
    """

    url: str
    engine: Engine
    _fences: tuple[_FenceState, ...] = ()

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @property
    def _where(self) -> str:
        return self.url.removeprefix("sqlite:///") if self.url.startswith("sqlite:") else redact_url(self.url)

    def _open_engine(self, url: str) -> None:
        self.url = url
        self._upserts: dict[tuple[Any, ...], Any] = {}
        if url.startswith("sqlite"):
            self.engine = self._sqlite_engine(url)
        else:
            self.engine = create_engine(
                url,
                json_serializer=json_dumps,
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=10,
                pool_recycle=1800,
                connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S},
            )

    @staticmethod
    def _sqlite_engine(url: str) -> Engine:
        memory = url in ("sqlite://", "sqlite:///:memory:")
        path = None if memory else make_url(url).database
        engine = create_engine(
            url,
            json_serializer=json_dumps,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S},
            poolclass=StaticPool if memory else None,
        )

        @event.listens_for(engine, "do_connect")
        def _before_connect(*_args: Any) -> None:
            if path:
                _make_private(Path(path))

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            if not memory:
                _wal(cur)
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
            if path:
                _make_private(Path(path))

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
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite). On a fenced view each fence
        is checked first, in this transaction; when one is not held the body still runs but
        is rolled back, and that fence's ``on_lost`` is called (once)."""
        fences = self._fences
        lost: list[_FenceState] = []
        try:
            with self.engine.connect() as conn:
                conn.execution_options(rlmx_begin="IMMEDIATE")
                with conn.begin() as tx:
                    lost = [f for f in fences if not f.fence.held(conn)]
                    yield conn
                    if lost:
                        tx.rollback()
        except IntegrityError as e:
            raise StoreError(f"metadata store {self._where} rejected a write: {e.orig}") from e
        except SQLAlchemyError as e:
            raise StoreError(f"metadata store {self._where} failed: {e}") from e
        for f in lost:
            f.lose()

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

    # --- fencing -------------------------------------------------------------------------
    def fenced_by(self, fence: Fence, on_lost: Callable[[], None] | None = None) -> Self:
        """A view of this store (same engine) whose every write transaction first calls
        ``fence.held(conn)`` in that transaction; when it is False the write is rolled back
        (it changes nothing) and ``on_lost()`` is called once. Reads are the store's own.
        A view of a view checks both fences."""
        view = copy.copy(self)
        view._fences = (*self._fences, _FenceState(fence, on_lost))
        return view

    @property
    def lease_lost(self) -> bool:
        """On a fenced view: a write was dropped because a fence was not held."""
        return any(f.lost for f in self._fences)

    def close(self) -> None:
        """Release pooled connections (call before forking, or when done); a fenced view
        shares its store's connections and leaves them open."""
        if not self._fences:
            self.engine.dispose()
