"""Alembic migrations of the metadata store (:mod:`rlmx.store.schema`), shipped in the
package and run by :mod:`rlmx.store.migrate` (no ``alembic.ini`` at run time).

A schema change: edit :mod:`rlmx.store.schema`, then add ``versions/NNNN_<what>.py``
(``down_revision`` = the previous head) and set ``rlmx.store.migrate.HEAD_REVISION``.
``alembic revision --autogenerate`` works with a config from
:func:`rlmx.store.migrate.alembic_config`.
"""

__all__: list[str] = []
