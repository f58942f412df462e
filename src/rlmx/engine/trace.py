"""Trace: the full JSON trajectory of an execution tree, assembled from the store.

Shape: ``{"execution": ExecutionRecord-dict, "turns": [turn...], "subcalls": [subcall...],
"children": [trace...]}``; a turn holds the root messages (``prompt`` on turn 1,
``response``, ``observation``), ``code``, ``stdout``, ``error``, ``span_log``, ``final`` and
``timings`` (seconds); a sub-call holds ``prompt``, ``response``, ``model``, tokens,
``cost_usd``, ``cached``, ``cache_error`` and, for ``rlm_query``, ``child_id``. Sub-calls
come in the order the REPL made them (their ids ``t{turn}.{n}``), not the order they finished
(a batch's calls finish, and are stored, in any order).
"""

from __future__ import annotations

import re
import weakref
from typing import Any

from ..aio_batch import ThreadBatcher
from ..store.base import MetadataStore

__all__ = ["load_trace", "record_subcall", "subcall_order"]

_WRITERS: weakref.WeakKeyDictionary[MetadataStore, ThreadBatcher[tuple[str, dict[str, Any]], None]] = (
    weakref.WeakKeyDictionary()
)


def _writer(meta: MetadataStore) -> ThreadBatcher[tuple[str, dict[str, Any]], None]:
    writer = _WRITERS.get(meta)
    if writer is None:
        ref = weakref.ref(meta)  # the batcher must not keep its store (the dict's key) alive

        def write(rows: list[tuple[str, dict[str, Any]]]) -> list[None]:
            store = ref()
            if store is not None:
                store.add_subcalls(rows)
            return [None] * len(rows)

        writer = _WRITERS[meta] = ThreadBatcher(write)
    return writer


async def record_subcall(meta: MetadataStore, execution_id: str, data: dict[str, Any]) -> None:
    """Append a sub-call record to the trace, off the event loop: the records of the sub-calls
    that finish at the same moment (a fan-out) go in one worker-thread hop and one
    transaction (:meth:`MetadataStore.add_subcalls`). Raises what the store raises
    (StoreError)."""
    await _writer(meta).submit((execution_id, data))


_ID = re.compile(r"t(\d+)\.(\d+)")


def subcall_order(record: dict[str, Any]) -> tuple[int, int]:
    """Sort key of a sub-call record: its turn and number from the id ``t{turn}.{n}`` (ids in
    another form sort after, in stored order)."""
    m = _ID.fullmatch(str(record.get("id", "")))
    return (int(m.group(1)), int(m.group(2))) if m else (1 << 30, 0)


def load_trace(meta: MetadataStore, execution_id: str, *, max_depth: int = 16) -> dict[str, Any]:
    """Return the trajectory of ``execution_id`` and its children (recursively, bounded by
    ``max_depth``). Raises :class:`~rlmx.errors.NotFoundError` for an unknown id."""
    rec = meta.get_execution(execution_id)
    children = []
    if max_depth > 0:
        children = [
            load_trace(meta, c.execution_id, max_depth=max_depth - 1)
            for c in meta.list_executions(parent_id=execution_id, limit=10_000)
        ]
    return {
        "execution": rec.model_dump(mode="json"),
        "turns": meta.get_turns(execution_id),
        "subcalls": sorted(meta.get_subcalls(execution_id), key=subcall_order),
        "children": children,
    }
