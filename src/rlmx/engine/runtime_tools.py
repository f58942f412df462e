"""Tool requests of a runtime step that wait for the client (``sub_calls: "client"``).

A :class:`PendingTools` holds the requests a running step raised (``llm_query``,
``llm_query_batched``, ``rlm_query``), each with a future the step awaits; the client's
results are validated and complete them, or the client lets the server resolve them
(:data:`SERVER`). Used by :class:`~rlmx.engine.runtime.RuntimeExecution`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import RlmxError
from ..sandbox.base import ToolRequest

__all__ = ["SERVER", "PendingTools", "RuntimeConflict", "ToolResultError"]


class RuntimeConflict(RlmxError):
    """The request does not fit the execution's state (finished, or a step is waiting)."""


class ToolResultError(RlmxError, ValueError):
    """A client-supplied tool result is malformed or names no waiting request."""


class _ServerResolve:
    """Marker: the client asked the server to resolve this request."""


SERVER = _ServerResolve()
"""The value a request gets when the client lets the server resolve it."""


class PendingTools:
    """The requests waiting for the client, by request id; ``changed`` is set whenever one
    arrives."""

    def __init__(self) -> None:
        self.waiting: dict[str, tuple[ToolRequest, asyncio.Future[Any]]] = {}
        self.changed = asyncio.Event()

    async def wait(self, req: ToolRequest) -> Any:
        """Hold ``req`` until the client answers: its value (a str, or a list of str for a
        batch), :data:`SERVER`, or the client's error raised as ``RuntimeError``."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[req.id] = (req, fut)
        self.changed.set()
        try:
            return await fut
        finally:
            self.waiting.pop(req.id, None)

    def listing(self) -> list[dict[str, Any]]:
        """The waiting requests as the client sees them: ``{id, kind, prompt | prompts +
        subcall_ids, context?}``, by id."""
        out = []
        for rid, (req, fut) in sorted(self.waiting.items()):
            if fut.done():
                continue
            p = req.payload
            item: dict[str, Any] = {"id": rid, "kind": req.kind}
            if req.kind == "llm_query_batched":
                item["prompts"] = list(p.get("prompts") or [])
                item["subcall_ids"] = list(p.get("subcall_ids") or [])
            else:
                item["prompt"] = str(p.get("prompt", ""))
            if req.kind == "rlm_query" and p.get("context") is not None:
                item["context"] = p.get("context")
            out.append(item)
        return out

    def answer(self, results: dict[str, Any], server_ids: list[str]) -> None:
        """Complete waiting requests with the client's ``results`` (``{id: value}``; a value
        is a str, a list of str for a batch, or ``{"error": str}``), and let the server resolve
        those in ``server_ids`` (``["*"]``: every other waiting one). Raises
        :class:`ToolResultError` for an unknown id or a malformed value (nothing is
        completed then)."""
        everything = "*" in server_ids
        unknown = [i for i in [*results, *(x for x in server_ids if x != "*")] if i not in self.waiting]
        if unknown:
            raise ToolResultError(f"no waiting tool request with id {unknown[0]!r}; waiting: {sorted(self.waiting)}")
        checked = {rid: self._check(rid, value) for rid, value in results.items()}
        for rid, value in checked.items():
            fut = self.waiting[rid][1]
            if not fut.done():
                if isinstance(value, Exception):
                    fut.set_exception(value)
                else:
                    fut.set_result(value)
        for rid, (_req, fut) in list(self.waiting.items()):
            if rid not in checked and (everything or rid in server_ids) and not fut.done():
                fut.set_result(SERVER)

    def _check(self, rid: str, value: Any) -> Any:
        req = self.waiting[rid][0]
        if isinstance(value, dict) and set(value) == {"error"}:
            return RuntimeError(f"the client could not answer: {value['error']}")
        if req.kind == "llm_query_batched":
            n = len(req.payload.get("prompts") or [])
            if not isinstance(value, list) or len(value) != n or not all(isinstance(v, str) for v in value):
                raise ToolResultError(f"{rid}: an llm_query_batched result is a list of {n} strings")
            return value
        if not isinstance(value, str):
            raise ToolResultError(f"{rid}: an {req.kind} result is a string")
        return value
