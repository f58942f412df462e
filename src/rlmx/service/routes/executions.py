"""Routes of answerer executions, and of reading any execution: its view, cancel, its
events (server-sent), its trajectory."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from ..auth import Principal
from ..core import Service
from ..deps import BODY_ERRORS, ERRORS, auth, service
from ..schemas import CancelOut, ExecutionAccepted, ExecutionCreate, ExecutionEstimate

__all__ = ["STATE_ERRORS", "router"]

_EVENT_ID = re.compile(r"[0-9]{1,18}")

router = APIRouter()


STATE_ERRORS = {**BODY_ERRORS, 409: {"description": "Session not READY"}}


@router.post(
    "/v1/sessions/{session_id}/executions",
    status_code=202,
    response_model=ExecutionAccepted,
    tags=["executions"],
    responses={**STATE_ERRORS, 200: {"model": ExecutionEstimate, "description": "`dry_run=true`: the estimate"}},
)
async def create_execution(
    session_id: str,
    body: ExecutionCreate,
    dry_run: bool = Query(False, description="Only estimate tokens and USD (200); create nothing, call no model."),
    p: Principal = auth,
    svc: Service = service,
) -> Any:
    """Answerer mode: the service drives the root LM; poll the execution or follow its events.
    With ``dry_run=true``: the pre-run cost estimate, and nothing is created."""
    request = body.model_dump(exclude_none=True)
    if dry_run:
        out = await asyncio.to_thread(svc.estimate_execution, p.tenant, session_id, request)
        return JSONResponse(ExecutionEstimate(**out).model_dump(mode="json"))
    return await asyncio.to_thread(svc.create_execution, p.tenant, session_id, request)


@router.post(
    "/v1/executions/{execution_id}/followups",
    status_code=202,
    response_model=ExecutionAccepted,
    tags=["executions"],
    responses={**BODY_ERRORS, 409: {"description": "The execution is still running, or is a child"}},
)
async def create_followup(execution_id: str, body: ExecutionCreate, p: Principal = auth, svc: Service = service) -> Any:
    """A follow-up question on the same session: a new answerer execution whose REPL keeps the
    finished execution's variables and whose root LM is told the earlier questions and answers."""
    return await asyncio.to_thread(svc.create_followup, p.tenant, execution_id, body.model_dump(exclude_none=True))


@router.get("/v1/executions/{execution_id}", tags=["executions"], responses=ERRORS)
async def get_execution(execution_id: str, p: Principal = auth, svc: Service = service) -> dict[str, Any]:
    """Status, answer, citations, usage, cost, budgets and what was consumed, last turn."""
    return await asyncio.to_thread(svc.execution_view, p.tenant, execution_id)


@router.post(
    "/v1/executions/{execution_id}/cancel",
    response_model=CancelOut,
    tags=["executions"],
    responses={**ERRORS, 413: BODY_ERRORS[413]},
)
async def cancel_execution(execution_id: str, p: Principal = auth, svc: Service = service) -> Any:
    """Stop the execution at its next turn boundary (a runtime execution at once)."""
    return await svc.cancel(p.tenant, execution_id)


@router.get(
    "/v1/executions/{execution_id}/events",
    tags=["executions"],
    responses={**ERRORS, 200: {"description": "Server-sent events", "content": {"text/event-stream": {}}}},
)
async def execution_events(
    execution_id: str,
    request: Request,
    follow: bool = Query(True, description="Keep the stream open until the execution ends."),
    last_event_id: str | None = Header(None),
    p: Principal = auth,
    svc: Service = service,
) -> EventSourceResponse:
    """Server-sent events: ``execution_started``, ``turn_started``, ``turn_finished``,
    ``subcall``, ``execution_finished`` (children too, with their depth),
    ``execution_resumed``, and ``final`` (status, answer, citations, usage) last."""
    await asyncio.to_thread(svc.owned_execution, p.tenant, execution_id)
    after = int(last_event_id) if last_event_id and _EVENT_ID.fullmatch(last_event_id) else 0
    poll = svc.settings.events_poll_seconds

    async def stream() -> AsyncIterator[ServerSentEvent]:
        nonlocal after
        grace = False
        while True:
            evs = await asyncio.to_thread(svc.meta.get_events, execution_id, after=after)
            for e in evs:
                after = e["id"]
                yield ServerSentEvent(data=json.dumps(e["data"]), event=e["kind"], id=str(e["id"]))
                if e["kind"] == "final":
                    return
            if evs:
                continue
            if not follow:
                return
            if await asyncio.to_thread(svc.is_finished, execution_id):
                if grace:
                    return
                grace = True  # its final event may be a moment behind its status
            if await request.is_disconnected():
                return
            await asyncio.sleep(poll)

    return EventSourceResponse(stream(), ping=15)


@router.get("/v1/executions/{execution_id}/trace", tags=["executions"], responses=ERRORS)
async def execution_trace(execution_id: str, p: Principal = auth, svc: Service = service) -> dict[str, Any]:
    """The trajectory: execution, turns (messages, code, output, span log), sub-calls, children."""
    return await asyncio.to_thread(svc.trace, p.tenant, execution_id)
