"""The routes of the HTTP API, one :class:`fastapi.APIRouter` per resource: :mod:`.health`
(probes, and the docs behind a key), :mod:`.sessions`, :mod:`.executions` (answerer
executions, events, trace, cancel), :mod:`.runtime` (runtime executions: steps, tool
results), :mod:`.spans` (spans, citations)."""

from __future__ import annotations

__all__: list[str] = []
