"""The service's operations, shared by the HTTP API (:mod:`.app`) and the MCP server.

Every operation takes the caller's tenant; an id of another tenant raises :class:`NotFound`
with the same message as a missing one. Errors are :class:`ServiceError` subclasses
(:mod:`.errors`) that carry their HTTP status (400, 403, 404, 409, 413, 429); the engine's
errors are translated here.

Jobs run under a claim (:mod:`rlmx.queue`, :mod:`.worker`): :func:`.leases.fenced_store`
gives the holder of a claim a store whose writes — the engine's (execution record, turns, sub-calls,
snapshots) and the service's (status, events) — count only while it still holds the claim,
so a worker that lost its job to another never overwrites the new owner's records
(:mod:`.leases`).

:class:`Service` composes one mixin per concern: :mod:`.base` (settings, store, models,
wakers, leases), :mod:`.paths` (path policy, uploads), :mod:`.sessions`,
:mod:`.executions` (answerer executions, events, views, cancel, trace), :mod:`.jobs` (the
job lifecycle), :mod:`.runtimes` (runtime executions and their live REPLs) and
:mod:`.spans` (spans and citations).
"""

from __future__ import annotations

from .base import TERMINAL
from .errors import BadRequest, Conflict, Forbidden, NotFound, ServiceError, TooLarge, TooMany
from .jobs import JobsMixin
from .paths import safe_filename
from .runtimes import RuntimesMixin
from .spans import MAX_SPAN_CHARS, MAX_VERIFY_CHARS, MAX_VERIFY_CITATIONS, SpansMixin

__all__ = [
    "MAX_SPAN_CHARS",
    "MAX_VERIFY_CHARS",
    "MAX_VERIFY_CITATIONS",
    "TERMINAL",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "Service",
    "ServiceError",
    "TooLarge",
    "TooMany",
    "safe_filename",
]


class Service(JobsMixin, RuntimesMixin, SpansMixin):
    """Sessions, executions (answerer and runtime), spans and citations for tenants, over
    one :class:`~rlmx.store.Store`. ``notice(message)`` receives one-line notices (e.g. a
    generated pepper)."""
