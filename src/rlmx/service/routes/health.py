"""Health probes (no key needed), and ``/docs`` and ``/openapi.json`` behind a key when
``RLMX_PUBLIC_DOCS=0`` (:data:`docs_router`, included only then)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from ..auth import Principal
from ..core import Service
from ..deps import auth, error_response, service
from ..schemas import Health

__all__ = ["docs_router", "router"]

router = APIRouter()
docs_router = APIRouter()


@docs_router.get("/openapi.json", include_in_schema=False)
async def _openapi(request: Request, _p: Principal = auth) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@docs_router.get("/docs", include_in_schema=False)
async def _docs(_p: Principal = auth) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="rlmx API")


@router.get("/health/live", response_model=Health, tags=["health"])
async def live() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/health/ready", response_model=Health, tags=["health"], responses={503: {"description": "Store down"}})
async def ready(svc: Service = service) -> Any:
    """The store is reachable."""
    if await asyncio.to_thread(svc.ready):
        return {"status": "ok"}
    return error_response(503, "the store is not reachable")
