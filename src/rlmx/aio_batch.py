"""Coalescing many small blocking jobs of one event loop into one worker-thread hop.

Issue 10 ("fan-out"): one ``llm_query_batched`` of 1,000 prompts made ≈ 3,000 store calls (a
cache lookup, a cache store and a trace row per sub-call), each its own
``asyncio.to_thread`` hop and its own SQLite transaction; the hops' GIL hand-offs and
commits were most of rlmx's own CPU per sub-call. :class:`ThreadBatcher` gathers the jobs
submitted while a hop is pending or running and hands them to one ``run_batch`` call in a
worker thread: at most one hop in flight per batcher, in submission order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["ThreadBatcher"]

T = TypeVar("T")
R = TypeVar("R")


class ThreadBatcher(Generic[T, R]):
    """``await batcher.submit(item)`` → the result ``run_batch`` gave for it.

    ``run_batch(items) -> results`` runs in a worker thread with every item submitted since
    the last call (up to ``max_batch``, oldest first) and must return one result per item, in
    order. If it raises, every item of that call gets the exception. A caller cancelled while
    waiting does not withdraw its item (it may already be written), as with ``to_thread``.
    A batcher follows the running event loop: used from a new loop, it starts afresh.
    """

    def __init__(self, run_batch: Callable[[list[T]], Sequence[R]], *, max_batch: int = 500) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.hops = 0
        """Worker-thread hops so far (each ran one batch)."""

    async def submit(self, item: T) -> R:
        """Queue ``item``; returns its result once its batch ran. Raises what ``run_batch`` raised."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._pending, self._drainer = loop, [], None
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            self.hops += 1
            try:
                results = await asyncio.to_thread(self.run_batch, [item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} items")
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
