"""The HTTP API (FastAPI): sessions, executions (answerer and runtime), spans, citations.

Every route but ``/health/*`` (and, unless ``RLMX_PUBLIC_DOCS=0``, ``/docs`` and
``/openapi.json``) needs ``Authorization: Bearer rlmx_…``; the trace viewer's pages under
``/ui/`` take the key once in a sign-in form, then a session cookie (:mod:`.routes.ui`).
Errors answer ``{"detail": message}`` with a 4xx status: 400 bad input, 401 no or bad key, 403 a path
outside ``RLMX_ALLOWED_PATHS``, 404 unknown id (or another tenant's: indistinguishable), 409
wrong state, 413 body too large, 415 wrong content type, 422 schema validation, 429 rate
limit or too many live runtime REPLs; 503 when the store is unavailable. Malformed input
(bodies that are not JSON, nested too deeply, with NaN, bad headers) is a 4xx, never a 500.
Reference: ``docs/api.md``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..engine.observers import add_observer, remove_observer
from ..errors import ConfigError, NotFoundError, ProviderError, ReplError, RlmxError, StoreError
from .auth import RateLimiter
from .core import Service
from .deps import error_response
from .errors import ServiceError
from .metrics import mount as metrics_route
from .ratelimit_storage import storage_for
from .routes import executions, health, runtime, sessions, spans, ui
from .schemas import SessionCreate
from .settings import ServiceSettings

__all__ = ["BodyLimit", "create_app"]

log = logging.getLogger("rlmx.service")


# --- request body limits ----------------------------------------------------------------------
class BodyLimit:
    """413 for a body over the limit: ``max_upload`` for multipart uploads, ``max_json``
    otherwise. A declared ``Content-Length`` is checked first; a chunked body is read up
    to the limit before the app sees it."""

    def __init__(self, app: ASGIApp, max_json: int, max_upload: int):
        self.app = app
        self.max_json = max_json
        self.max_upload = max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        multipart = headers.get("content-type", "").lower().startswith("multipart/")
        limit = self.max_upload if multipart else self.max_json
        declared = headers.get("content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False
            if too_big:
                await self._reject(send, limit)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                await self.app(scope, _replay([msg]), send)
                return
            body = msg.get("body", b"")
            size += len(body)
            if size > limit:
                await self._reject(send, limit)
                return
            chunks.append(body)
            more = msg.get("more_body", False)
        await self.app(scope, _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}]), send)

    @staticmethod
    async def _reject(send: Send, limit: int) -> None:
        body = json.dumps({"detail": f"request body too large: the limit is {limit:,} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Message]) -> Receive:
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        await asyncio.Event().wait()  # nothing more: wait like a quiet client
        return {"type": "http.disconnect"}

    return receive


_SERVER_FAULTS: list[tuple[type[RlmxError] | tuple[type[RlmxError], ...], int, str]] = [
    (StoreError, 503, "the store is unavailable; retry in a few seconds"),
    (ProviderError, 502, "the model provider failed; retry later"),
    ((ConfigError, ReplError), 503, "the server cannot serve this request now (logged for its operator); retry later"),
]
"""Errors that are the server's fault, each answered with a status and a generic message."""


def _allowed(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI schema documents for ``path`` (every route of it: Starlette
    names only those of the first route matching it)."""
    methods: set[str] = set()
    for template, ops in app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods |= {m.upper() for m in ops if m in _HTTP_METHODS}
    return sorted(methods)


_HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _openapi_with(app: FastAPI, models: list[type[BaseModel]]) -> Callable[[], dict[str, Any]]:
    """Add ``models`` (used by hand-parsed bodies) to the OpenAPI components."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = base()
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        for m in models:
            js = m.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in js.pop("$defs", {}).items():
                comps.setdefault(name, sub)
            comps.setdefault(m.__name__, js)
        app.openapi_schema = schema
        return schema

    return openapi


def create_app(
    service: Service | None = None,
    *,
    settings: ServiceSettings | None = None,
    worker: bool = True,
    notice: Callable[[str], None] | None = None,
) -> FastAPI:
    """The FastAPI app over ``service`` (default: a :class:`Service` on ``$RLMX_HOME``).
    ``worker``: run an in-process worker of the queue while the app is up."""
    svc = service or Service(settings, notice=notice)
    st = svc.settings
    limiter = RateLimiter(st.rate_limit_per_minute, storage_for(svc.meta))  # shared by every server

    async def reaper(stop: asyncio.Event) -> None:
        """Stop idle runtime REPLs (with or without an in-process worker)."""
        every = min(max(st.runtime_idle_seconds / 4, 0.05), 30.0)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass
            try:
                await svc.reap_idle()
            except Exception:  # keep reaping
                log.exception("reaping idle runtime REPLs failed")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        if metrics is not None:
            add_observer(metrics)
        tasks = [asyncio.create_task(reaper(stop))]
        if worker:
            from .worker import Worker

            tasks.append(asyncio.create_task(Worker(svc).run(stop)))
        try:
            yield
        finally:
            stop.set()
            if metrics is not None:
                remove_observer(metrics)
            await asyncio.gather(*tasks, return_exceptions=True)
            await svc.close_runtimes()

    app = FastAPI(
        title="rlmx",
        version=__version__,
        summary="Recursive Language Models as a service: sessions, executions, spans, citations.",
        docs_url="/docs" if st.public_docs else None,
        openapi_url="/openapi.json" if st.public_docs else None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = svc
    metrics = metrics_route(app, svc.meta)  # GET /metrics with RLMX_METRICS=1 (no key, no tenant data)
    app.state.limiter = limiter
    app.add_middleware(BodyLimit, max_json=st.max_request_bytes, max_upload=st.max_upload_bytes)

    @app.exception_handler(ServiceError)
    async def _service_error(_r: Request, e: ServiceError) -> JSONResponse:
        return error_response(e.status, e.message, e.headers)

    @app.exception_handler(RecursionError)
    async def _too_deep(_r: Request, _e: RecursionError) -> JSONResponse:
        return error_response(400, "the request is nested too deeply")

    @app.exception_handler(NotFoundError)
    async def _not_found(_r: Request, e: NotFoundError) -> JSONResponse:
        return error_response(404, str(e))

    @app.exception_handler(RlmxError)
    async def _rlmx_error(r: Request, e: RlmxError) -> JSONResponse:
        """A fault of the server (store, configuration, provider, REPL) is a 502/503 with a
        generic message, its detail logged; any other rlmx error is the request's (400)."""
        for kinds, status, message in _SERVER_FAULTS:
            if isinstance(e, kinds):
                log.error("%s %s: %s: %s", r.method, r.url.path, type(e).__name__, e)
                return error_response(status, message, {"Retry-After": "5"})
        return error_response(400, f"{type(e).__name__}: {e}")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(r: Request, e: StarletteHTTPException) -> Response:
        """As FastAPI answers, but a 405's ``Allow`` lists every method of the path (Starlette
        names only those of the first route matching it)."""
        allowed = _allowed(app, r.url.path) if e.status_code == 405 else []
        if allowed:
            return error_response(405, f"method not allowed: use {', '.join(allowed)}", {"Allow": ", ".join(allowed)})
        return await http_exception_handler(r, e)

    @app.exception_handler(RequestValidationError)
    async def _invalid(r: Request, e: RequestValidationError) -> JSONResponse:
        """422 with where and what (not the input: it may hold NaN, which JSON cannot carry);
        400 for a body that is not JSON at all."""
        raw = e.errors()
        if any(err.get("type") == "json_invalid" for err in raw):
            return error_response(400, "the body is not JSON: send an application/json object")
        errors = [{k: v for k, v in err.items() if k in ("type", "loc", "msg")} for err in raw]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    if not st.public_docs:
        app.include_router(health.docs_router)
    for module in (health, sessions, executions, runtime, spans, ui):
        app.include_router(module.router)
    app.openapi = _openapi_with(app, [SessionCreate])  # type: ignore[method-assign]
    return app
