"""Schema migrations of the metadata store (alembic, configured in code: no ``alembic.ini``).

Policy, applied by :func:`upgrade_connection` under a lock (SQLite's write lock, a
PostgreSQL advisory lock), so several processes opening one store at once never race:

* current (``alembic_version`` holds :data:`HEAD_REVISION`): nothing to do;
* empty database: upgrade from scratch to head;
* rlmx tables but no ``alembic_version`` (a store written by a release that used
  ``metadata.create_all``): adopt it as revision ``0001`` (that revision creates only the
  tables that are missing: for a complete store this is a stamp), then upgrade to head;
* behind: upgrade to head; a revision this release does not know (written by a newer
  rlmx): ``StoreError``.

A SQLite store is upgraded whenever it is opened. A PostgreSQL store is upgraded by
``SQLMetadataStore(url, migrate=True)`` (servers and workers), :func:`upgrade` or
``rlmx db upgrade``; otherwise opening one that is behind raises ``StoreError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy import Connection, Engine, func, inspect, select, text

from rlmx.errors import StoreError
from rlmx.store import schema

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "ADVISORY_LOCK_KEY",
    "HEAD_REVISION",
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "SchemaState",
    "alembic_config",
    "current",
    "ensure_current",
    "schema_state",
    "upgrade",
    "upgrade_connection",
]

HEAD_REVISION = "0004"
"""The newest revision in ``migrations/versions`` (a test checks it against alembic)."""
VERSION_TABLE = "alembic_version"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ADVISORY_LOCK_KEY = 0x726C6D78_0001  # pg_advisory_xact_lock key held while migrating
_INITIAL = "0001"

SchemaState = Literal["current", "empty", "legacy", "behind", "ahead"]


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An alembic ``Config`` for the packaged migrations: ``script_location`` is
    :data:`MIGRATIONS_DIR`; ``sqlalchemy.url`` is ``url`` when given; migrations run on
    ``connection`` (in its transaction; the caller commits) when given."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("version_table", VERSION_TABLE)
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    return {s.revision for s in scripts.walk_revisions()}


def schema_state(conn: Connection) -> tuple[SchemaState, str | None]:
    """Where the database behind ``conn`` stands, and its revision (None when unversioned):
    ``current``, ``empty``, ``legacy`` (rlmx tables, no version table), ``behind`` or
    ``ahead`` (a revision this release does not know)."""
    rev = _revision(conn)
    if rev == HEAD_REVISION:
        return "current", rev
    if rev is None:
        tables = set(inspect(conn).get_table_names())
        return ("legacy" if tables & set(schema.metadata.tables) else "empty"), None
    return ("behind" if rev in _known_revisions() else "ahead"), rev


def _ahead(where: str, rev: str | None) -> StoreError:
    return StoreError(
        f"metadata store {where} is at schema revision {rev!r}, which this rlmx (schema {HEAD_REVISION}) "
        "does not know: it was written by a newer rlmx; upgrade rlmx on this host"
    )


def upgrade_connection(conn: Connection, *, where: str = "database") -> str:
    """Bring the database behind ``conn`` to head, following the module's policy, in the
    transaction ``conn`` is in (the caller holds the lock and commits). Returns the
    revision reached. Raises ``StoreError`` for a revision newer than this release."""
    state, rev = schema_state(conn)
    if state == "current":
        return HEAD_REVISION
    if state == "ahead":
        raise _ahead(where, rev)
    from alembic import command

    cfg = alembic_config(connection=conn)
    if state == "legacy":
        command.upgrade(cfg, _INITIAL)  # creates only missing tables: adopts create_all's schema
    command.upgrade(cfg, "head")
    return HEAD_REVISION


def _upgrade_engine(engine: Engine, where: str) -> str:
    with engine.connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
        else:
            conn.exec_driver_sql("SELECT 1")  # inside BEGIN: SQLite locks on first write
        return upgrade_connection(conn, where=where)


def ensure_current(engine: Engine, *, migrate: bool, where: str) -> None:
    """Check that the database of ``engine`` is at head; when it is not, upgrade it if
    ``migrate`` (under a PostgreSQL advisory lock), else raise ``StoreError`` asking to run
    ``rlmx db upgrade``. A revision newer than this release raises ``StoreError``."""
    with engine.connect() as conn, conn.begin():
        state, rev = schema_state(conn)
    if state == "current":
        return
    if state == "ahead":
        raise _ahead(where, rev)
    if not migrate:
        what = {"empty": "has no rlmx tables", "legacy": "has no schema version"}.get(
            state, f"is at schema revision {rev}, behind {HEAD_REVISION}"
        )
        raise StoreError(
            f"metadata store {where} {what}: run `rlmx db upgrade` (with RLMX_DATABASE_URL set, or "
            "--url URL) to migrate it, or start rlmx serve/worker, which migrate on start"
        )
    _upgrade_engine(engine, where)


def upgrade(url: str) -> str:
    """Upgrade the metadata store at ``url`` (any form :class:`SQLMetadataStore` takes) to
    head; returns the revision reached. Safe when several processes run it at once.
    Raises ``ConfigError`` for a malformed URL, ``StoreError`` when the database fails."""
    from rlmx.store.sql import SQLMetadataStore

    SQLMetadataStore(url, migrate=True).close()
    return HEAD_REVISION


def current(url: str) -> tuple[str | None, SchemaState]:
    """The revision of the metadata store at ``url`` (None when unversioned) and its
    :data:`SchemaState`; reads only (a missing SQLite file is reported ``empty`` and not
    created). Raises ``ConfigError`` for a malformed URL, ``StoreError`` when the database
    cannot be read."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    from rlmx.store.sql_core import database_url, redact_url

    db = database_url(url, create_folder=False)
    if db.startswith("sqlite"):
        path = make_url(db).database
        if path and path != ":memory:" and not Path(path).exists():
            return None, "empty"
    engine = create_engine(db, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            state, rev = schema_state(conn)
    except SQLAlchemyError as e:
        raise StoreError(f"cannot read metadata store {redact_url(db)}: {e}; check the URL") from e
    finally:
        engine.dispose()
    return rev, state
