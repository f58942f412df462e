"""Routes of runtime executions: start one, read its prompt, run a step, answer its tool
requests."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from ..auth import Principal
from ..core import Service
from ..deps import BODY_ERRORS, ERRORS, auth, service
from ..schemas import PromptOut, ResolveIn, RuntimeAccepted, RuntimeCreate, StepIn, StepOut
from .executions import STATE_ERRORS

__all__ = ["router"]

router = APIRouter()


runtime_start_errors = {
    **STATE_ERRORS,
    429: {"description": "Rate limit, or too many runtime executions with a live REPL"},
}


@router.post(
    "/v1/sessions/{session_id}/executions/runtime",
    status_code=201,
    response_model=RuntimeAccepted,
    tags=["runtime"],
    responses=runtime_start_errors,
)
async def create_runtime(session_id: str, body: RuntimeCreate, p: Principal = auth, svc: Service = service) -> Any:
    """Runtime mode: the client submits each step (``POST /v1/executions/{id}/steps``)."""
    return await svc.create_runtime(p.tenant, session_id, body.model_dump(exclude_none=True))


INCLUDE = Query(
    None,
    pattern=r"^(stdout|span_log)(,(stdout|span_log))*$",
    description="Extras of the step answer, comma-separated: `stdout` (the whole output), `span_log`.",
)


def _include(include: str | None) -> set[str]:
    return set(include.split(",")) if include else set()


@router.get(
    "/v1/executions/{execution_id}/prompt",
    response_model=PromptOut,
    tags=["runtime"],
    responses={**ERRORS, 409: {"description": "An answerer execution (its prompt is in its trace)"}},
)
async def get_prompt(
    execution_id: str,
    offset: int = Query(0, ge=0, le=10_000_000, description="First document of the `context` page."),
    limit: int = Query(50, ge=0, le=1000, description="Documents in the `context` page."),
    p: Principal = auth,
    svc: Service = service,
) -> Any:
    """A runtime execution's root system prompt (the text answerer mode sends its root LM
    for this corpus and budgets) and a page of its documents' names and lengths."""
    return await svc.runtime_prompt(p.tenant, execution_id, offset, limit)


runtime_errors = {
    **BODY_ERRORS,
    400: {"description": "Bad input or tool result"},
    409: {"description": "Not a running runtime execution, or a step is waiting"},
    429: {"description": "Rate limit, or too many runtime executions with a live REPL (restoring this one)"},
}


@router.post("/v1/executions/{execution_id}/steps", response_model=StepOut, tags=["runtime"], responses=runtime_errors)
async def run_step(
    execution_id: str,
    body: StepIn,
    include: str | None = INCLUDE,
    p: Principal = auth,
    svc: Service = service,
) -> Any:
    """Run one step (bare code, or a fenced ```repl block) in the execution's REPL; the
    answer's ``observation`` is the output as the root LM sees it in answerer mode. With
    ``sub_calls: "client"`` the answer may be ``waiting: true`` with ``tool_requests`` to
    answer through ``tools/resolve``."""
    return await svc.step(p.tenant, execution_id, body.code, _include(include))


@router.post(
    "/v1/executions/{execution_id}/tools/resolve",
    response_model=StepOut,
    tags=["runtime"],
    responses=runtime_errors,
)
async def resolve_tools(
    execution_id: str,
    body: ResolveIn,
    include: str | None = INCLUDE,
    p: Principal = auth,
    svc: Service = service,
) -> Any:
    """Answer the waiting tool requests of the current step with the client's own
    ``results``, or let the server's models resolve ``server_ids`` (``["*"]``: all the
    others); answers like a step (maybe waiting again)."""
    results: dict[str, Any] = {}
    for r in body.results:
        results[r.id] = {"error": r.error} if r.error is not None else r.value  # one is set (ToolResultIn)
    return await svc.resolve_tools(p.tenant, execution_id, results, body.server_ids, _include(include))


# -- spans and citations --------------------------------------------------------------------
