"""What the routes of the HTTP API depend on: the :class:`~.core.Service` of the app
(``app.state.service``), the caller's :class:`~.auth.Principal` from the bearer key (rate
limited by ``app.state.limiter``), the common error responses, and the error body."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .auth import Principal, RateLimiter
from .core import Service

__all__ = ["BODY_ERRORS", "ERRORS", "auth", "error_response", "get_service", "principal", "service"]

_bearer = HTTPBearer(auto_error=False, description="An API key from `rlmx keys create`: `Bearer rlmx_…`")
_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, invalid or revoked API key"},
    404: {"description": "Unknown id (or another tenant's)"},
    429: {"description": "Rate limit of the key reached"},
}
"""The error responses every authenticated route documents."""
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    400: {"description": "Bad input (a body that is not JSON or not UTF-8 included)"},
    413: {"description": "Body larger than RLMX_MAX_REQUEST_BYTES"},
    422: {"description": "The body does not match its schema"},
}
"""The error responses every route with a JSON body documents."""


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The error body: ``{"detail": message}``."""
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def get_service(request: Request) -> Service:
    """The app's service."""
    svc: Service = request.app.state.service
    return svc


async def principal(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
    """The caller of a bearer key: 401 without a valid key, 429 over its rate limit."""
    svc = get_service(request)
    limiter: RateLimiter = request.app.state.limiter
    st = svc.settings
    if creds is None or not creds.credentials:
        raise HTTPException(401, "missing API key: send Authorization: Bearer rlmx_…", headers=_UNAUTHORIZED)
    p = await asyncio.to_thread(svc.keys.check, creds.credentials)  # store I/O: off the event loop
    if p is None:
        raise HTTPException(401, "invalid or revoked API key", headers=_UNAUTHORIZED)
    wait = await asyncio.to_thread(limiter.hit, p.key_id)
    if wait > 0:
        raise HTTPException(
            429,
            f"rate limit of {st.rate_limit_per_minute} requests a minute reached for this key; retry in {wait:.1f} s",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return p


auth = Depends(principal)
"""A route parameter's default: the caller (``p: Principal = auth``)."""
service = Depends(get_service)
"""A route parameter's default: the app's service (``svc: Service = service``)."""
