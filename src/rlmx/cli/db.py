"""``rlmx db``: the metadata store's schema (``upgrade``, ``current``).

The store is ``--url``, else ``$RLMX_DATABASE_URL``, else ``$RLMX_HOME/rlmx.sqlite``.
Exit codes: 0 done (``current``: at head), 1 the database failed or is behind
(``current``), 2 a malformed URL.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

__all__ = ["db"]

err = Console(stderr=True, highlight=False, soft_wrap=True)

_URL_HELP = (
    "The metadata store: a SQLite path or sqlite:///PATH, or postgresql+psycopg://USER@HOST:PORT/DB "
    "(default: $RLMX_DATABASE_URL, else $RLMX_HOME/rlmx.sqlite)."
)


def _url(url: str | None) -> str:
    if url:
        return url
    from ..config import Settings

    settings = Settings()
    return settings.database_url or str(Path(settings.home).expanduser() / "rlmx.sqlite")


def _exit(e: Exception) -> None:
    from ..errors import ConfigError

    err.print(f"[bold red]rlmx:[/] {e}", markup=True)
    sys.exit(2 if isinstance(e, ConfigError) else 1)


@click.group()
def db() -> None:
    """The metadata store's schema: migrate it (PostgreSQL stores are migrated by `rlmx db
    upgrade` or by serve/worker on start; SQLite stores whenever they are opened)."""


@db.command("upgrade")
@click.option("--url", help=_URL_HELP)
def upgrade_cmd(url: str | None) -> None:
    """Upgrade the store's schema to this release's (creating it when empty); on PostgreSQL,
    create the work queue's tables too."""
    from ..errors import RlmxError
    from ..store import migrate
    from ..store.sql_core import redact_url

    target = _url(url)
    try:
        before, _state = migrate.current(target)
        after = migrate.upgrade(target)
        queue_created = _queue_schema(target)
    except RlmxError as e:
        _exit(e)
        return
    where = redact_url(target)
    if before == after:
        click.echo(f"{where}: already at revision {after}")
    else:
        click.echo(f"{where}: upgraded from {before or 'no schema'} to revision {after}")
    if queue_created:
        click.echo(f"{where}: created the work queue's tables (Procrastinate)")


def _queue_schema(url: str) -> bool:
    """On PostgreSQL, apply Procrastinate's schema when absent (True when it did); the work
    queue lives in the same database (:mod:`rlmx.queue.pg`)."""
    from ..store.sql_core import database_url

    full = database_url(url, create_folder=False)
    if not full.startswith("postgresql"):
        return False
    from ..queue.pg import PgQueue
    from ..store import open_metadata

    meta = open_metadata(full)
    try:
        queue = PgQueue(full, meta)
        try:
            return queue.ensure_schema()
        finally:
            queue.close()
    finally:
        close = getattr(meta, "close", None)
        if callable(close):
            close()


@db.command("current")
@click.option("--url", help=_URL_HELP)
def current_cmd(url: str | None) -> None:
    """Print the store's schema revision and whether it is up to date (exit 1 when not)."""
    from ..errors import RlmxError
    from ..store import migrate
    from ..store.sql_core import redact_url

    target = _url(url)
    try:
        rev, state = migrate.current(target)
    except RlmxError as e:
        _exit(e)
        return
    notes = {
        "current": "up to date",
        "empty": "no schema yet: run `rlmx db upgrade`",
        "legacy": "created before migrations: run `rlmx db upgrade`",
        "behind": f"behind {migrate.HEAD_REVISION}: run `rlmx db upgrade`",
        "ahead": f"newer than this rlmx (schema {migrate.HEAD_REVISION}): upgrade rlmx",
    }
    click.echo(f"{redact_url(target)}: revision {rev or 'none'} ({notes[state]})")
    if state != "current":
        sys.exit(1)
