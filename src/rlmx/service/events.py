"""Progress events written off the event loop, in order.

The engine emits events synchronously from its turn loop (``tree.emit``). An
:class:`EventWriter` stores each one in the metadata store (``add_event``) from a single
background thread, so the loop never waits for the database and events keep their order;
:meth:`EventWriter.flush` waits until every event handed over is stored (call it, from a
thread, before the execution's ``final`` event). Called outside an event loop, it writes at
once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..errors import RlmxError
from ..store.base import MetadataStore

__all__ = ["EventWriter", "jsonable"]

log = logging.getLogger("rlmx.service")


def jsonable(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as plain JSON values (anything else as its ``str``)."""
    out: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return out


class EventWriter:
    """``writer(kind, data)`` stores an event of the execution tree rooted at ``root_id``
    into ``meta`` (see the module doc). Failures are logged, never raised: progress events
    are not worth failing an execution for."""

    def __init__(self, meta: MetadataStore, root_id: str):
        self.meta = meta
        self.root_id = root_id
        self._pool: ThreadPoolExecutor | None = None
        self._last: Future[None] | None = None
        self._lock = threading.Lock()

    def _write(self, kind: str, data: dict[str, Any]) -> None:
        try:
            self.meta.add_event(self.root_id, kind, data)
        except RlmxError:
            log.warning("could not store a %s event of %s", kind, self.root_id)

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        plain = jsonable(data)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no event loop in this thread: nothing to stall
            self._write(kind, plain)
            return
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlmx-events")
            self._last = self._pool.submit(self._write, kind, plain)

    def flush(self) -> None:
        """Wait until every event handed over is stored (blocking: call it from a thread)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
