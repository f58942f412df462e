"""Alembic migrations of the metadata store: from scratch on SQLite and PostgreSQL, stores
written by the create_all releases adopted in place, concurrent upgrades, `rlmx db`."""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.pool import NullPool

from rlmx.cli.main import cli
from rlmx.errors import StoreError
from rlmx.store import migrate, schema
from rlmx.store.sql import SQLMetadataStore

_STAMP = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file that does not exist yet, or a fresh PG database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    eng = create_engine(url, poolclass=NullPool)
    yield eng
    eng.dispose()


def _version(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _legacy_rows(engine: Engine) -> None:
    """What today's release leaves behind: create_all, a few rows, no alembic_version."""
    with engine.begin() as conn:
        schema.metadata.create_all(conn)
        conn.execute(schema.llm_cache.insert().values(key="k1", value={"text": "héllo"}, created_at=_STAMP))
        conn.execute(
            schema.api_keys.insert().values(
                key_id="key_1", tenant="acme", key_hmac="h" * 64, name="ci", created_at=_STAMP
            )
        )
        conn.execute(schema.subcalls.insert().values(execution_id="e1", data={"turn": 1}, created_at=_STAMP))


def test_head_revision_constant_matches_scripts() -> None:
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    assert scripts.get_current_head() == migrate.HEAD_REVISION
    assert (migrate.MIGRATIONS_DIR / "script.py.mako").is_file()  # shipped for `alembic revision`


def test_upgrade_from_scratch(url: str, engine: Engine) -> None:
    assert migrate.current(url) == (None, "empty")
    assert migrate.upgrade(url) == migrate.HEAD_REVISION
    assert _version(engine) == migrate.HEAD_REVISION
    assert migrate.current(url) == (migrate.HEAD_REVISION, "current")
    assert set(schema.metadata.tables) <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:  # the migrated schema is schema.py's: autogenerate sees nothing to do
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), schema.metadata)
    assert diffs == []
    assert migrate.upgrade(url) == migrate.HEAD_REVISION  # idempotent


def _sqlite_ddl(engine: Engine) -> set[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT type, name, sql FROM sqlite_master WHERE tbl_name != 'alembic_version'"))
        return {(r.type, r.name, re.sub(r"\s+", " ", r.sql or "")) for r in rows}


def test_sqlite_migration_reproduces_create_all_exactly(tmp_path: Path) -> None:
    by_alembic = f"sqlite:///{tmp_path / 'a.sqlite'}"
    SQLMetadataStore(by_alembic).close()
    by_create_all = create_engine(f"sqlite:///{tmp_path / 'b.sqlite'}", poolclass=NullPool)
    with by_create_all.begin() as conn:
        schema.metadata.create_all(conn)
    migrated = create_engine(by_alembic, poolclass=NullPool)
    assert _sqlite_ddl(migrated) == _sqlite_ddl(by_create_all)


def test_store_of_todays_release_upgrades_in_place(url: str, engine: Engine) -> None:
    _legacy_rows(engine)
    assert migrate.current(url) == (None, "legacy")
    if engine.dialect.name == "postgresql":
        with pytest.raises(StoreError, match="rlmx db upgrade"):
            SQLMetadataStore(url)  # servers pass migrate=True; others are told what to run
    store = SQLMetadataStore(url, migrate=True)  # SQLite: upgraded on open whatever migrate says
    try:
        assert _version(engine) == migrate.HEAD_REVISION
        assert store.cache_get("k1") == {"text": "héllo"}
        assert [k.key_id for k in store.list_api_keys("acme")] == ["key_1"]
        store.add_subcall("e1", {"turn": 2})  # the autoincrement keeps counting after the old rows
        assert store.get_subcalls("e1") == [{"turn": 1}, {"turn": 2}]
    finally:
        store.close()


def test_partial_legacy_store_gets_missing_tables(url: str, engine: Engine) -> None:
    with engine.begin() as conn:  # a store last opened by a release before the service tables
        schema.documents.create(conn)
        schema.llm_cache.create(conn)
        conn.execute(schema.llm_cache.insert().values(key="old", value={"v": 1}, created_at=_STAMP))
    store = SQLMetadataStore(url, migrate=True)
    try:
        assert set(schema.metadata.tables) <= set(inspect(engine).get_table_names())
        assert store.cache_get("old") == {"v": 1}
        store.add_event("e1", "started", {})
    finally:
        store.close()


def test_newer_revision_is_refused(url: str, engine: Engine) -> None:
    migrate.upgrade(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    assert migrate.current(url) == ("9999", "ahead")
    with pytest.raises(StoreError, match="newer rlmx"):
        SQLMetadataStore(url, migrate=True)


def test_pg_without_migrate_names_the_command(pg_url: str) -> None:
    with pytest.raises(StoreError, match=r"run `rlmx db upgrade`"):
        SQLMetadataStore(pg_url)
    with pytest.raises(StoreError, match=r"rlmx db upgrade"):
        SQLMetadataStore(pg_url, migrate=False)
    assert migrate.current(pg_url) == (None, "empty")  # nothing was created
    SQLMetadataStore(pg_url, migrate=True).close()
    SQLMetadataStore(pg_url).close()  # at head: opens without migrating


def _upgrade_when_released(url: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait(60)
    migrate.upgrade(url)


def test_concurrent_upgrades(url: str, engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        _legacy_rows(engine)  # the racers must also agree on adopting an unversioned store
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_upgrade_when_released, args=(url, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(90)
        assert p.exitcode == 0
    assert _version(engine) == migrate.HEAD_REVISION
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


# --- rlmx db ---------------------------------------------------------------------------


def test_cli_db_upgrade_and_current(url: str) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["db", "current", "--url", url])
    assert res.exit_code == 1 and "run `rlmx db upgrade`" in res.output
    res = runner.invoke(cli, ["db", "upgrade", "--url", url])
    assert res.exit_code == 0, res.output
    assert f"to revision {migrate.HEAD_REVISION}" in res.output
    res = runner.invoke(cli, ["db", "upgrade", "--url", url])
    assert res.exit_code == 0 and "already at revision" in res.output
    res = runner.invoke(cli, ["db", "current", "--url", url])
    assert res.exit_code == 0 and "up to date" in res.output


def test_cli_db_uses_rlmx_database_url(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLMX_DATABASE_URL", pg_url)
    res = CliRunner().invoke(cli, ["db", "upgrade"])
    assert res.exit_code == 0, res.output
    assert migrate.current(pg_url) == (migrate.HEAD_REVISION, "current")
    assert "work queue's tables" in res.output  # Procrastinate's schema, in the same database
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is not None
    engine.dispose()
    again = CliRunner().invoke(cli, ["db", "upgrade"])
    assert again.exit_code == 0 and "work queue" not in again.output


@pytest.mark.parametrize(
    "bad", ["mysql://u@h/db", "postgresql://u:secret@h:notaport/db", "postgresql:/h/db", "postgresql://h"]
)
@pytest.mark.parametrize("command", ["upgrade", "current"])
def test_cli_db_malformed_url(bad: str, command: str) -> None:
    res = CliRunner().invoke(cli, ["db", command, "--url", bad])
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit) and "Traceback" not in res.output
    assert "postgresql+psycopg://" in res.output  # says what a valid URL looks like
    assert "secret" not in res.output


def test_cli_db_unreachable_server() -> None:
    res = CliRunner().invoke(cli, ["db", "current", "--url", "postgresql+psycopg://u@127.0.0.1:9/db"])
    assert res.exit_code == 1
    assert isinstance(res.exception, SystemExit) and "check the URL" in res.output
