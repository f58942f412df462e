"""Futures for sub-calls inside the REPL process (docs/repl.md, "Futures").

:func:`submit` sends a tool request over the worker's channel
(:class:`rlmx.sandbox.channel.Channel`) **without waiting** and returns a :class:`Handle`;
the channel's reader thread (which already routes every ``tool_result`` to its waiting
slot) completes it. No thread is started here: the orchestrator resolves the requests
concurrently, and the code keeps running until it asks for a result.

The orchestrator reserves the budget when the request arrives, that is at submission. A
handle belongs to the step that started it: when the step ends, every request still
unanswered is cancelled by the orchestrator (its reservation released) and its handle
fails with a :class:`~rlmx.sandbox.namespace.ToolError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .channel import Channel, reply_value
from .namespace import BudgetExceeded

__all__ = ["Handle", "submit", "wait"]


class Handle:
    """A sub-call started by ``llm_query_async`` / ``rlm_query_async``: ``id`` (the
    sub-call id, ``t{turn}.{n}``), ``kind``, :meth:`done` and :meth:`result`.

    ``on_budget(message)`` is called when the result is a spent budget (the REPL then ends
    the step, as a blocking sub-call does); ``convert`` maps the raw value to the result."""

    def __init__(
        self,
        rid: str,
        kind: str,
        slot: list[Any],
        on_budget: Callable[[str], None],
        convert: Callable[[Any], Any] = lambda v: v,
    ) -> None:
        self.id = rid
        self.kind = kind
        self._slot = slot
        self._on_budget = on_budget
        self._convert = convert

    def __repr__(self) -> str:
        return f"<{self.kind} handle {self.id} {'done' if self.done() else 'running'}>"

    def done(self) -> bool:
        """Whether the orchestrator has answered (a value or an error)."""
        return bool(self._slot[0].is_set())

    def result(self, timeout: float | None = None) -> Any:
        """The sub-call's result (a str), waiting up to ``timeout`` seconds (None: until it
        is answered). Raises TimeoutError when it is not answered in time (the sub-call goes
        on: call again), ToolError when it failed, BudgetExceeded (which ends the step) when
        a budget of the tree is spent."""
        if not self._slot[0].wait(timeout):
            raise TimeoutError(f"{self.kind} {self.id} is still running after {timeout:g} s; call .result() again")
        return self._convert(reply_value(self.kind, self._slot[1], self._on_budget))


def submit(
    channel: Channel,
    kind: str,
    rid: str,
    payload: dict[str, Any],
    on_budget: Callable[[str], None],
    convert: Callable[[Any], Any] = lambda v: v,
) -> Handle:
    """Send the tool request ``{kind, id: rid, payload}`` over ``channel`` and return its
    :class:`Handle` at once. Raises TypeError when the payload is not JSON, ToolError when
    the orchestrator is gone."""
    slot = channel.post(kind, rid, payload)
    return Handle(rid, kind, slot, on_budget, convert)


def wait(handles: Iterable[Handle], timeout: float | None = None) -> list[Any]:
    """The results of ``handles`` in their order, once all are answered (``timeout``: seconds
    for the whole wait, None: no limit). Every handle is waited for before the first error
    is raised (ToolError, BudgetExceeded; TimeoutError when one is still running)."""
    import time

    items = list(handles)
    if not all(isinstance(h, Handle) for h in items):
        raise TypeError("wait(handles): pass handles returned by llm_query_async or rlm_query_async")
    end = None if timeout is None else time.monotonic() + timeout
    for h in items:
        h._slot[0].wait(None if end is None else max(0.0, end - time.monotonic()))
    out: list[Any] = []
    first: BaseException | None = None
    for h in items:
        try:
            out.append(h.result(0 if end is not None else None))
        except (Exception, BudgetExceeded) as e:
            if first is None or (isinstance(e, BudgetExceeded) and not isinstance(first, BudgetExceeded)):
                first = e
            out.append(None)
    if first is not None:
        raise first
    return out
