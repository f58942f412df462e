"""Process-wide observers of engine events: the one seam that progress displays, metrics and
OpenTelemetry export read.

Every event an execution tree emits (:meth:`rlmx.engine.state.Tree.emit`) goes to the tree's
own ``on_event`` sink (the CLI's progress, the service's :class:`~rlmx.service.events.EventWriter`)
and then to every observer added here. An observer is ``observer(kind, data, content)``:
``data`` is the event as its sinks get it (plain, JSON-able numbers and ids, never prompt
text); ``content`` is None or, for ``turn_finished`` and ``subcall``, the text the LM saw and
answered (``{"input": [messages], "output": str}``) — kept out of ``data`` so that it is
never stored as an event. Observers run synchronously on the engine's event loop: they must
be quick and must not do I/O; an observer that raises is logged and skipped.

Events (``data`` keys; seconds, tokens, USD):

* ``execution_started``: ``execution_id, depth, question, resumed, parent_id``
* ``turn_started``: ``execution_id, depth, turn``
* ``turn_finished``: ``execution_id, depth, turn, root_s, step_s, error`` and, in answerer
  mode, ``model, input_tokens, output_tokens, cost_usd, cached`` of the root-LM call
* ``subcall_started``: ``execution_id, depth, id, kind``
* ``subcall``: ``execution_id, depth, id, kind, cached, turn, seconds`` and, for a sub-LM
  call, ``model, input_tokens, output_tokens, cost_usd``
* ``execution_finished``: ``execution_id, depth, status``
* ``sandbox_warning``, ``execution_resumed`` and, from the service, ``ingest_finished``:
  ``documents, characters, failed, seconds``
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["Observer", "add_observer", "notify", "observing", "remove_observer", "turn_event"]

log = logging.getLogger("rlmx.engine")

Observer = Callable[[str, dict[str, Any], dict[str, Any] | None], None]

_observers: list[Observer] = []
_lock = threading.Lock()
_defaults_done = False


def add_observer(observer: Observer) -> None:
    """Send every engine event of this process to ``observer`` too (see the module doc)."""
    with _lock:
        if observer not in _observers:
            _observers.append(observer)


def remove_observer(observer: Observer) -> None:
    """Stop sending events to ``observer`` (no error when it was not added)."""
    with _lock:
        if observer in _observers:
            _observers.remove(observer)


@contextmanager
def observing(observer: Observer) -> Iterator[Observer]:
    """``with observing(obs): ...`` — ``obs`` receives the events of the block."""
    add_observer(observer)
    try:
        yield observer
    finally:
        remove_observer(observer)


def _install_defaults() -> None:
    """Once per process: the OpenTelemetry observer when the standard ``OTEL_*`` variables
    ask for traces (:func:`rlmx.engine.otel.observer_from_env`; nothing is imported otherwise)."""
    global _defaults_done
    if _defaults_done:
        return
    _defaults_done = True
    wanted = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if any(os.environ.get(k) for k in wanted):
        from .otel import observer_from_env

        obs = observer_from_env()
        if obs is not None:
            add_observer(obs)


def notify(kind: str, data: dict[str, Any], content: dict[str, Any] | None = None) -> None:
    """Hand one event to every observer (errors logged, never raised)."""
    if not _defaults_done:
        _install_defaults()
    for obs in list(_observers):
        try:
            obs(kind, data, content)
        except Exception:
            log.exception("an observer of engine events failed on %s", kind)


def turn_event(execution_id: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``turn_finished`` data of a committed turn ``record`` (the orchestrator's or
    runtime mode's turn dict): ids, seconds and, when the turn had a root-LM call, its model,
    tokens, USD cost (None: unknown) and cache flag."""
    timings = record.get("timings") or {}
    data: dict[str, Any] = {
        "execution_id": execution_id,
        "depth": record.get("depth", 0),
        "turn": record.get("turn"),
        "root_s": float(timings.get("root_s", 0.0)),
        "step_s": float(timings.get("step_s", 0.0)),
        "error": bool(record.get("error")),
    }
    if record.get("root_model"):
        data.update(
            model=record["root_model"],
            input_tokens=int(record.get("input_tokens") or 0),
            output_tokens=int(record.get("output_tokens") or 0),
            cost_usd=record.get("cost_usd"),
            cached=bool(record.get("cached")),
        )
    return data
