"""Trace: the full JSON trajectory of an execution tree, assembled from the store.

Shape: ``{"execution": ExecutionRecord-dict, "turns": [turn...], "subcalls": [subcall...],
"children": [trace...]}``; a turn holds the root messages (``prompt`` on turn 1,
``response``, ``observation``), ``code``, ``stdout``, ``error``, ``span_log``, ``final`` and
``timings`` (seconds); a sub-call holds ``prompt``, ``response``, ``model``, tokens,
``cost_usd``, ``cached`` and, for ``rlm_query``, ``child_id``.
"""

from __future__ import annotations

from typing import Any

from ..store.base import MetadataStore

__all__ = ["load_trace"]


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
        "subcalls": meta.get_subcalls(execution_id),
        "children": children,
    }
