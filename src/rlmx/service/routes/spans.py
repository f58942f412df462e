"""Routes of spans and citations: read a span, verify citations."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from ..auth import Principal
from ..core import Service
from ..deps import BODY_ERRORS, auth, service
from ..schemas import SpanGet, SpanOut, VerifyIn, VerifyOut

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/v1/spans/get",
    response_model=SpanOut,
    tags=["citations"],
    responses={**BODY_ERRORS, 400: {"description": "Bad offsets or body"}, 409: {"description": "Session not READY"}},
)
async def get_span(body: SpanGet, p: Principal = auth, svc: Service = service) -> Any:
    """The canonical text of ``[start, end)`` (code points) and its SpanRef with checksum."""
    return await asyncio.to_thread(
        svc.get_span,
        p.tenant,
        doc_id=body.doc_id,
        session_id=body.session_id,
        doc_index=body.doc_index,
        start=body.start,
        end=body.end,
    )


@router.post(
    "/v1/citations/verify",
    response_model=VerifyOut,
    tags=["citations"],
    responses={**BODY_ERRORS, 413: {"description": "Body too large, or citations cover too many characters"}},
)
async def verify(body: VerifyIn, p: Principal = auth, svc: Service = service) -> Any:
    """Recompute each citation's checksum against the stored canonical text (at most
    1,000 citations and 10,000,000 characters of spans a request)."""
    cites = [c.model_dump(exclude_none=True) for c in body.citations]
    checks = await asyncio.to_thread(svc.verify, p.tenant, cites)
    results = [c.__dict__ for c in checks]
    return {"all_ok": all(c.ok for c in checks), "results": results}
