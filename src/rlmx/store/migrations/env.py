"""Alembic environment of the metadata store.

:mod:`rlmx.store.migrate` passes an open connection (already in a transaction, holding the
SQLite write lock or the PostgreSQL advisory lock) as ``config.attributes["connection"]``;
migrations run in that transaction and the caller commits. Without one (the ``alembic``
command line), an engine is made from the ``sqlalchemy.url`` option.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from rlmx.store import schema

__all__: list[str] = []

config = context.config


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object | None) -> bool:
    """Autogenerate considers only rlmx's tables: others in the same database (Procrastinate's)
    are never proposed for drops."""
    return not (type_ == "table" and reflected and compare_to is None)


def _run(conn: Connection) -> None:
    context.configure(
        connection=conn,
        target_metadata=schema.metadata,
        render_as_batch=conn.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
        include_object=_ours,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=schema.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
    else:
        engine = create_engine(str(config.get_main_option("sqlalchemy.url")), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                _run(conn)
                conn.commit()
        finally:
            engine.dispose()
