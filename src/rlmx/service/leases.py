"""Lease-fenced writes: the store as the holder of a job's lease writes it.

Jobs (and runtime steps) run under a claim (:mod:`rlmx.queue`): :func:`fenced_store` gives
the holder of a claim a store whose writes — the engine's (execution record, turns, sub-calls, snapshots) and the
service's (status, events) — count only while it still holds the lease, so a worker that
lost its job to another never overwrites the new owner's records.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ..queue import fence_held
from ..store import Store
from ..store.base import BlobStore, Fence

__all__ = ["fenced_store"]


class _LeaseBlobs(BlobStore):
    """The blob store as the holder of a job's lease writes it: a put or delete is made only
    while the lease is held (checked just before; the window is one query), else skipped
    and ``lost()`` called."""

    def __init__(self, inner: BlobStore, held: Callable[[], bool], lost: Callable[[], None]):
        self.inner = inner
        self._held = held
        self._lost = lost

    def _ok(self) -> bool:
        if self._held():
            return True
        self._lost()
        return False

    def put(self, key: str, data: bytes) -> None:
        if self._ok():
            self.inner.put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if self._ok():
            return self.inner.put_if_absent(key, data)
        return False

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def delete(self, key: str) -> None:
        if self._ok():
            self.inner.delete(key)

    def local_path(self, key: str) -> Path:
        return self.inner.local_path(key)


def _once(fn: Callable[[], None] | None) -> Callable[[], None]:
    done = threading.Event()

    def call() -> None:
        if not done.is_set():
            done.set()
            if fn is not None:
                fn()

    return call


def fenced_store(store: Store, fence: Fence, on_lost: Callable[[], None] | None = None) -> Store:
    """``store`` as the holder of a claim writes it: every metadata write is committed only
    while ``fence.held(conn)`` (checked in the write's own transaction,
    ``MetadataStore.fenced_by``), a blob is written only while it holds (see
    :class:`_LeaseBlobs`); otherwise the write changes nothing and ``on_lost()`` is called
    once. ``fence``: a :class:`~rlmx.store.base.Fence` (a ``jobs`` row lease, or a
    Procrastinate job attempt)."""
    lost = _once(on_lost)
    meta = store.meta.fenced_by(fence, lost)
    blobs = _LeaseBlobs(store.blobs, lambda: fence_held(store.meta, fence), lost)
    return Store(home=store.home, meta=meta, blobs=blobs)
