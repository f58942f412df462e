"""The trace viewer in the service (issue 12): ``/ui/executions/{id}`` shows an execution
of the caller's tenant (:mod:`rlmx.viewer`); another tenant's id, or a missing one, is 404.

The API key never goes into a URL. ``/ui/login`` is a form that POSTs the key once; the
answer sets the cookie ``rlmx_ui`` (HttpOnly, SameSite=Strict, path ``/ui``, Secure over
HTTPS) holding a session token ``{key_hmac}.{expires}.{signature}``: the key's HMAC (what
the store keys it by, not the key), when the session ends (Unix seconds) and an
HMAC-SHA256 under the server's pepper, so no one without the pepper can make one. Each
request checks the token like a bearer key: the key must still exist and not be revoked,
and its rate limit counts the page. ``/ui/static/`` serves the page's CSS and JS (public).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import re
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...viewer.render import ASSETS, asset, render_notice, render_page
from ...viewer.server import PAGE_HEADERS
from ...viewer.source import load_page
from ..auth import Principal, RateLimiter
from ..core import Service
from ..deps import get_service
from ..errors import NotFound

__all__ = ["COOKIE", "SESSION_SECONDS", "make_token", "read_token", "router"]

router = APIRouter(include_in_schema=False)

COOKIE = "rlmx_ui"
SESSION_SECONDS = 12 * 3600
"""How long a sign-in lasts."""
STATIC = "/ui/static"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_EXECUTION_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


def _signature(pepper: bytes, key_hmac: str, expires: int) -> str:
    return hmac.new(pepper, f"rlmx-ui-session\0{key_hmac}\0{expires}".encode(), hashlib.sha256).hexdigest()


def make_token(pepper: bytes, key_hmac: str, now: float | None = None) -> str:
    """A session token for the key whose HMAC is ``key_hmac``, valid :data:`SESSION_SECONDS`."""
    expires = int(now if now is not None else time.time()) + SESSION_SECONDS
    return f"{key_hmac}.{expires}.{_signature(pepper, key_hmac, expires)}"


def read_token(pepper: bytes, token: str | None, now: float | None = None) -> str | None:
    """The key HMAC of a well-signed, unexpired token, else None (never raises)."""
    parts = (token or "").split(".")
    if len(parts) != 3 or not _HEX64.fullmatch(parts[0]) or not parts[1].isdigit() or len(parts[1]) > 12:
        return None
    key_hmac, expires = parts[0], int(parts[1])
    if expires < (now if now is not None else time.time()):
        return None
    return key_hmac if hmac.compare_digest(parts[2], _signature(pepper, key_hmac, expires)) else None


def _html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def _login_page(next_url: str, status: int = 401, error: str = "") -> HTMLResponse:
    return _html(
        render_notice(
            "Sign in",
            "Sign in with an API key of your tenant (`rlmx keys create`) to see its executions.",
            asset_base=STATIC,
            login=True,
            action="/ui/login",
            next_url=next_url,
            error=error,
        ),
        status,
    )


def _safe_next(value: Any) -> str:
    """Where to go after signing in: a path of the UI, never another site."""
    v = str(value or "")
    return v if v.startswith("/ui/") and not v.startswith("//") and "\\" not in v and len(v) < 300 else "/ui/"


async def _caller(request: Request, svc: Service) -> Principal | Response:
    """The principal of the session cookie, else the sign-in page (401) or a 429 page."""
    key_hmac = read_token(svc.keys.pepper, request.cookies.get(COOKIE))
    rec = await asyncio.to_thread(svc.meta.find_api_key, key_hmac) if key_hmac else None
    if rec is None or rec.revoked_at is not None:
        return _login_page(_safe_next(request.url.path))
    limiter: RateLimiter = request.app.state.limiter
    wait = await asyncio.to_thread(limiter.hit, rec.key_id)
    if wait > 0:
        message = f"rate limit of {svc.settings.rate_limit_per_minute} requests a minute reached; retry in {wait:.1f} s"
        page = render_notice("Too many requests", message, asset_base=STATIC)
        return _html(page, 429, {"Retry-After": str(max(1, math.ceil(wait)))})
    return Principal(rec.tenant, rec.key_id)


@router.get("/ui/static/{name}")
async def ui_static(name: str) -> Response:
    if name not in ASSETS:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(asset(name), media_type=ASSETS[name], headers={"X-Content-Type-Options": "nosniff"})


@router.get("/ui/login")
async def ui_login_form(next: str = "/ui/") -> Response:
    return _login_page(_safe_next(next), status=200)


@router.post("/ui/login")
async def ui_login(request: Request) -> Response:
    svc = get_service(request)
    form = await request.form()
    key, next_url = str(form.get("key") or "").strip(), _safe_next(form.get("next"))
    p = await asyncio.to_thread(svc.keys.check, key) if key else None
    if p is None:
        return _login_page(next_url, error="invalid or revoked API key")
    resp = RedirectResponse(next_url, status_code=303, headers={"Cache-Control": "no-store"})
    resp.set_cookie(
        COOKIE,
        make_token(svc.keys.pepper, svc.keys.digest(key)),
        max_age=SESSION_SECONDS,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return resp


@router.post("/ui/logout")
async def ui_logout() -> Response:
    resp = RedirectResponse("/ui/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return resp


@router.get("/ui/")
async def ui_home(request: Request, id: str | None = None) -> Response:
    """Signed in: a form asking for an execution id (``?id=`` goes to its page)."""
    svc = get_service(request)
    who = await _caller(request, svc)
    if isinstance(who, Response):
        return who
    if id and _EXECUTION_ID.fullmatch(id):
        return RedirectResponse(f"/ui/executions/{id}", status_code=303)
    message = f"Signed in for tenant {who.tenant}. Open one of its executions:"
    return _html(render_notice("rlmx trace viewer", message, asset_base=STATIC, action="/ui/", open_form=True))


@router.get("/ui/executions/{execution_id}")
async def ui_execution(execution_id: str, request: Request) -> Response:
    """The trace viewer page of one of the tenant's executions (404 for any other id)."""
    svc = get_service(request)
    who = await _caller(request, svc)
    if isinstance(who, Response):
        return who
    tenant = who.tenant
    try:
        await asyncio.to_thread(svc.owned_execution, tenant, execution_id)
    except NotFound as e:
        return _html(render_notice("Not found", str(e), asset_base=STATIC), 404)

    def page() -> str:
        view = load_page(svc.store, execution_id, allowed=lambda doc_id: svc.meta.tenant_has_document(tenant, doc_id))
        return render_page(view, asset_base=STATIC)

    return _html(await asyncio.to_thread(page))
