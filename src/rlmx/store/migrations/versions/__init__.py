"""Alembic revisions of the metadata store, oldest first (``0001_initial``, ...)."""

__all__: list[str] = []
