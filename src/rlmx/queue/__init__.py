"""Work queues behind one seam (:class:`WorkQueue`): the ``jobs`` table claimed by lease in
the embedded SQLite mode (:class:`~rlmx.queue.local.LocalQueue`), Procrastinate on
PostgreSQL (:class:`~rlmx.queue.pg.PgQueue`). :func:`open_queue` picks by the metadata
store's URL. See ``docs/scale-out.md``."""

from __future__ import annotations

from typing import Any

from .base import Claim, JobHandler, Requeue, WorkQueue, fence_held

__all__ = ["Claim", "JobHandler", "Requeue", "WorkQueue", "fence_held", "open_queue"]


def open_queue(meta: Any, *, lease_s: float = 30.0, poll_s: float = 0.5) -> WorkQueue:
    """The queue for the metadata store ``meta`` (a SQL store with ``.url``):
    Procrastinate when it is PostgreSQL, else the embedded lease queue. ``lease_s``: seconds
    after which a silent worker's jobs go to another worker; ``poll_s``: idle polling."""
    url = str(getattr(meta, "url", ""))
    if url.startswith("postgresql"):
        from .pg import PgQueue

        return PgQueue(url, meta, lease_s=lease_s, poll_s=poll_s)
    from .local import LocalQueue

    return LocalQueue(meta, lease_s=lease_s, poll_s=poll_s)
