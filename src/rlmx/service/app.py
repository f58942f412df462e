"""The HTTP API (FastAPI): sessions, executions (answerer and runtime), spans, citations.

Every route but ``/health/*`` (and, unless ``RLMX_PUBLIC_DOCS=0``, ``/docs`` and
``/openapi.json``) needs ``Authorization: Bearer rlmx_…``. Errors answer
``{"detail": message}`` with a 4xx status: 400 bad input, 401 no or bad key, 403 a path
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
import math
import re
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import ConfigError, NotFoundError, RlmxError, StoreError
from ..types import Budgets
from .auth import Principal, RateLimiter
from .core import MAX_VERIFY_CITATIONS, BadRequest, Service, ServiceError, safe_filename
from .settings import ServiceSettings

__all__ = ["create_app"]

log = logging.getLogger("rlmx.service")

MAX_JSON_DEPTH = 64
"""How deeply free-form JSON (``options``, ``output_schema``) may nest."""
_EVENT_ID = re.compile(r"[0-9]{1,18}")


def _json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of decoded JSON, without recursion; counted up to ``limit + 1``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            if d <= limit:
                stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _plain_json(value: Any) -> Any:
    """Free-form JSON must nest at most ``MAX_JSON_DEPTH`` levels, hold finite numbers and
    text that is valid Unicode (no lone surrogates such as ``"\\ud800"``)."""
    if value is None:
        return value
    if _json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("text must be valid Unicode (no lone surrogates)") from None
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return value


PlainJSON = Annotated[dict[str, Any] | None, AfterValidator(_plain_json)]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load_json(raw: bytes, what: str = "the body") -> Any:
    """``raw`` as JSON, else BadRequest (not JSON, NaN/Infinity, nested too deeply)."""
    try:
        data = json.loads(raw or b"null", parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise BadRequest(f"{what} is not JSON: {why}") from None
    if _json_depth(data, MAX_JSON_DEPTH + 4) > MAX_JSON_DEPTH + 4:
        raise BadRequest(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    return data


# --- request and response bodies -------------------------------------------------------------
class DocIn(BaseModel):
    """A server path (file or folder) under ``RLMX_ALLOWED_PATHS``."""

    model_config = ConfigDict(extra="forbid")
    source_name: str | None = Field(None, max_length=500, description="Display name (default: the file name).")
    path: str = Field(min_length=1, max_length=4096)


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    docs: list[DocIn] = Field(min_length=1, max_length=1000)
    ttl_minutes: int | None = Field(None, ge=1, le=525_600, description="Delete the session after this many minutes.")
    options: PlainJSON = None


class Accepted(BaseModel):
    session_id: str
    status: str


class SessionOut(BaseModel):
    session_id: str
    status: Literal["CREATING", "READY", "FAILED"]
    error: str | None = None
    corpus_id: str | None = None
    documents: list[dict[str, Any]]
    n_documents: int
    n_failed: int
    options: dict[str, Any]
    created_at: str
    expires_at: str | None = None


class SessionList(BaseModel):
    sessions: list[SessionOut]


class ModelsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    root: str | None = Field(None, max_length=300, description="Root LM spec, e.g. openai:gpt-5 or baseline.")
    sub: str | None = Field(None, max_length=300, description="Sub-LM spec for llm_query.")


class ExecutionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=200_000)
    models: ModelsIn | None = None
    budgets: Budgets | None = None
    output_schema: PlainJSON = Field(None, description="JSON Schema of SUBMIT(**fields).")


class RuntimeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str | None = Field(
        None, max_length=200_000, description="What the client is working on (for the record)."
    )
    models: ModelsIn | None = None
    budgets: Budgets | None = None
    output_schema: PlainJSON = None
    sub_calls: Literal["server", "client"] = Field(
        "server", description="`client`: llm_query/rlm_query inside a step wait for the client's results."
    )


class ExecutionAccepted(BaseModel):
    execution_id: str
    status: str


class RuntimeAccepted(ExecutionAccepted):
    sub_calls: Literal["server", "client"]


class CancelOut(BaseModel):
    execution_id: str
    status: str
    cancel_requested: bool


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=1_000_000, description="Python code run in the execution's REPL.")


class ToolResultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(max_length=200)
    value: str | list[str] | None = Field(None, description="A string; a list of strings for llm_query_batched.")
    error: str | None = Field(None, max_length=10_000, description="The client could not answer: raised in the code.")


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    results: list[ToolResultIn] = Field(default_factory=list, max_length=10_000)
    server_ids: list[str] = Field(
        default_factory=list,
        max_length=10_000,
        description='Ids the server resolves; ["*"]: all the others.',
    )


class StepOut(BaseModel):
    execution_id: str
    turn: int
    status: str
    waiting: bool
    success: bool | None
    stdout: str
    error: str | None
    timed_out: bool
    span_log: list[dict[str, Any]]
    variables: list[str]
    tool_requests: list[dict[str, Any]]
    final: dict[str, Any] | None
    answer: str | None
    citations: list[dict[str, Any]]
    fields: dict[str, Any] | None


class SpanGet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    doc_id: str | None = Field(None, max_length=200)
    session_id: str | None = Field(None, max_length=200)
    doc_index: int | None = Field(None, ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class SpanRefOut(BaseModel):
    doc_id: str
    doc_name: str
    start: int
    end: int
    checksum: str
    text: str


class SpanOut(BaseModel):
    text: str
    span: SpanRefOut


class CitationIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    doc_id: str = Field(max_length=200)
    start: int
    end: int
    checksum: str = Field(max_length=200)
    text: str | None = None
    doc_name: str | None = None


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    citations: list[CitationIn] = Field(max_length=MAX_VERIFY_CITATIONS)


class CheckOut(BaseModel):
    index: int
    doc_id: str
    start: int
    end: int
    ok: bool
    reason: str


class VerifyOut(BaseModel):
    all_ok: bool
    results: list[CheckOut]


class Health(BaseModel):
    status: str


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


# --- the app ----------------------------------------------------------------------------------
_bearer = HTTPBearer(auto_error=False, description="An API key from `rlmx keys create`: `Bearer rlmx_…`")
_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, invalid or revoked API key"},
    404: {"description": "Unknown id (or another tenant's)"},
    429: {"description": "Rate limit of the key reached"},
}


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
    limiter = RateLimiter(st.rate_limit_per_minute)

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
        tasks = [asyncio.create_task(reaper(stop))]
        if worker:
            from .worker import Worker

            tasks.append(asyncio.create_task(Worker(svc).run(stop)))
        try:
            yield
        finally:
            stop.set()
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
    app.add_middleware(BodyLimit, max_json=st.max_request_bytes, max_upload=st.max_upload_bytes)

    def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status, headers=headers)

    @app.exception_handler(ServiceError)
    async def _service_error(_r: Request, e: ServiceError) -> JSONResponse:
        return _error(e.status, e.message, e.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, e: RequestValidationError) -> JSONResponse:
        """422 with where and what (not the input: it may hold NaN, which JSON cannot carry)."""
        errors = [{k: v for k, v in err.items() if k in ("type", "loc", "msg")} for err in e.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(RecursionError)
    async def _too_deep(_r: Request, _e: RecursionError) -> JSONResponse:
        return _error(400, "the request is nested too deeply")

    @app.exception_handler(NotFoundError)
    async def _not_found(_r: Request, e: NotFoundError) -> JSONResponse:
        return _error(404, str(e))

    @app.exception_handler(StoreError)
    async def _store_error(_r: Request, e: StoreError) -> JSONResponse:
        return _error(503, f"the store is unavailable: {e}", {"Retry-After": "5"})

    @app.exception_handler(ConfigError)
    async def _config_error(_r: Request, e: ConfigError) -> JSONResponse:
        return _error(400, str(e))

    @app.exception_handler(RlmxError)
    async def _rlmx_error(_r: Request, e: RlmxError) -> JSONResponse:
        return _error(400, f"{type(e).__name__}: {e}")

    async def principal(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
        if creds is None or not creds.credentials:
            raise HTTPException(401, "missing API key: send Authorization: Bearer rlmx_…", headers=_UNAUTHORIZED)
        p = svc.keys.check(creds.credentials)
        if p is None:
            raise HTTPException(401, "invalid or revoked API key", headers=_UNAUTHORIZED)
        wait = limiter.hit(p.key_id)
        if wait > 0:
            raise HTTPException(
                429,
                f"rate limit of {st.rate_limit_per_minute} requests a minute reached for this key; "
                f"retry in {wait:.1f} s",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return p

    auth = Depends(principal)

    if not st.public_docs:

        @app.get("/openapi.json", include_in_schema=False)
        async def _openapi(_p: Principal = auth) -> JSONResponse:
            return JSONResponse(app.openapi())

        @app.get("/docs", include_in_schema=False)
        async def _docs(_p: Principal = auth) -> HTMLResponse:
            return get_swagger_ui_html(openapi_url="/openapi.json", title="rlmx API")

    # -- health ---------------------------------------------------------------------------------
    @app.get("/health/live", response_model=Health, tags=["health"])
    async def live() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/health/ready", response_model=Health, tags=["health"], responses={503: {"description": "Store down"}})
    async def ready() -> Any:
        """The store is reachable."""
        if svc.ready():
            return {"status": "ok"}
        return _error(503, "the store is not reachable")

    # -- sessions -------------------------------------------------------------------------------
    session_body = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SessionCreate"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                            "ttl_minutes": {"type": "integer", "minimum": 1, "maximum": 525600},
                            "options": {"type": "string", "description": "A JSON object."},
                        },
                        "required": ["files"],
                    }
                },
            },
        }
    }

    @app.post(
        "/v1/sessions",
        status_code=202,
        response_model=Accepted,
        tags=["sessions"],
        openapi_extra=session_body,
        responses={
            **_ERRORS,
            400: {"description": "Bad input"},
            403: {"description": "Path outside RLMX_ALLOWED_PATHS"},
            413: {"description": "Too large"},
            415: {"description": "Not JSON or multipart"},
            422: {"description": "Invalid body"},
        },
    )
    async def create_session(request: Request, p: Principal = auth) -> Any:
        """Create a session from documents: a multipart upload (one or more ``files``
        fields, optional ``ttl_minutes`` and ``options``), or JSON ``{"docs": [{"source_name",
        "path"}], "ttl_minutes"?, "options"?}`` with paths under ``RLMX_ALLOWED_PATHS``.
        Ingestion runs in the background: poll ``GET /v1/sessions/{id}``."""
        ctype = request.headers.get("content-type", "").lower()
        if ctype.startswith("multipart/form-data"):
            rec = await _from_upload(request, p)
        elif ctype.startswith("application/json") or not ctype:
            data = _load_json(await request.body())
            try:
                body = SessionCreate.model_validate(data)
            except ValidationError as e:
                return JSONResponse(
                    {"detail": e.errors(include_url=False, include_context=False, include_input=False)},
                    status_code=422,
                )
            rec = svc.create_session_from_paths(
                p.tenant, [d.model_dump() for d in body.docs], ttl_minutes=body.ttl_minutes, options=body.options
            )
        else:
            return _error(415, "send application/json or multipart/form-data")
        return {"session_id": rec.session_id, "status": rec.status}

    async def _from_upload(request: Request, p: Principal) -> Any:
        sid, folder = svc.new_upload_dir()
        try:
            try:
                form = await request.form(max_files=1000, max_fields=100)
            except Exception as e:  # malformed multipart
                raise BadRequest(f"malformed multipart body: {e}") from None
            files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
            if not files:
                raise BadRequest("multipart: send one or more `files` fields with file content")
            ttl: int | None = None
            raw_ttl = form.get("ttl_minutes")
            if isinstance(raw_ttl, str) and raw_ttl.strip():
                try:
                    ttl = int(raw_ttl)
                except ValueError:
                    raise BadRequest("ttl_minutes must be an integer") from None
                if not 1 <= ttl <= 525_600:
                    raise BadRequest("ttl_minutes must be between 1 and 525600")
            options: dict[str, Any] | None = None
            raw_opt = form.get("options")
            if isinstance(raw_opt, str) and raw_opt.strip():
                options = _load_json(raw_opt.encode("utf-8", "surrogatepass"), "options")
                if not isinstance(options, dict):
                    raise BadRequest("options must be a JSON object")
                try:
                    _plain_json(options)
                except ValueError as e:
                    raise BadRequest(f"options: {e}") from None
            taken: set[str] = set()
            inputs = []
            for f in files:
                name = safe_filename(f.filename or "upload", taken)
                dest = folder / name
                with dest.open("wb") as out:
                    await asyncio.to_thread(shutil.copyfileobj, f.file, out)
                await f.close()
                inputs.append({"source_name": name, "path": str(dest)})
            return svc.create_session(
                p.tenant, inputs, ttl_minutes=ttl, options=options, session_id=sid, upload_dir=str(folder)
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    @app.get("/v1/sessions", response_model=SessionList, tags=["sessions"], responses=_ERRORS)
    async def list_sessions(limit: int = Query(100, ge=1, le=1000), p: Principal = auth) -> Any:
        """The caller's sessions, newest first."""
        return {"sessions": [svc.session_view(s) for s in svc.list_sessions(p.tenant, limit)]}

    @app.get("/v1/sessions/{session_id}", response_model=SessionOut, tags=["sessions"], responses=_ERRORS)
    async def get_session(session_id: str, p: Principal = auth) -> Any:
        """Status (``CREATING``, ``READY``, ``FAILED``) and per-document status and errors."""
        return svc.session_view(svc.get_session(p.tenant, session_id))

    @app.delete("/v1/sessions/{session_id}", status_code=204, tags=["sessions"], responses=_ERRORS)
    async def delete_session(session_id: str, p: Principal = auth) -> None:
        """Delete the session (its uploaded files too)."""
        svc.delete_session(p.tenant, session_id)

    # -- executions -----------------------------------------------------------------------------
    state_errors = {**_ERRORS, 400: {"description": "Bad input"}, 409: {"description": "Session not READY"}}
    runtime_start_errors = {
        **state_errors,
        429: {"description": "Rate limit, or too many runtime executions with a live REPL"},
    }

    @app.post(
        "/v1/sessions/{session_id}/executions",
        status_code=202,
        response_model=ExecutionAccepted,
        tags=["executions"],
        responses=state_errors,
    )
    async def create_execution(session_id: str, body: ExecutionCreate, p: Principal = auth) -> Any:
        """Answerer mode: the service drives the root LM; poll the execution or follow its events."""
        return svc.create_execution(p.tenant, session_id, body.model_dump(exclude_none=True))

    @app.post(
        "/v1/sessions/{session_id}/executions/runtime",
        status_code=201,
        response_model=RuntimeAccepted,
        tags=["runtime"],
        responses=runtime_start_errors,
    )
    async def create_runtime(session_id: str, body: RuntimeCreate, p: Principal = auth) -> Any:
        """Runtime mode: the client submits each step (``POST /v1/executions/{id}/steps``)."""
        return await svc.create_runtime(p.tenant, session_id, body.model_dump(exclude_none=True))

    @app.get("/v1/executions/{execution_id}", tags=["executions"], responses=_ERRORS)
    async def get_execution(execution_id: str, p: Principal = auth) -> dict[str, Any]:
        """Status, answer, citations, usage, cost, budgets and what was consumed, last turn."""
        return svc.execution_view(p.tenant, execution_id)

    @app.post("/v1/executions/{execution_id}/cancel", response_model=CancelOut, tags=["executions"], responses=_ERRORS)
    async def cancel_execution(execution_id: str, p: Principal = auth) -> Any:
        """Stop the execution at its next turn boundary (a runtime execution at once)."""
        return await svc.cancel(p.tenant, execution_id)

    @app.get(
        "/v1/executions/{execution_id}/events",
        tags=["executions"],
        responses={**_ERRORS, 200: {"description": "Server-sent events", "content": {"text/event-stream": {}}}},
    )
    async def execution_events(
        execution_id: str,
        request: Request,
        follow: bool = Query(True, description="Keep the stream open until the execution ends."),
        last_event_id: str | None = Header(None),
        p: Principal = auth,
    ) -> EventSourceResponse:
        """Server-sent events: ``execution_started``, ``turn_started``, ``turn_finished``,
        ``subcall``, ``execution_finished`` (children too, with their depth),
        ``execution_resumed``, and ``final`` (status, answer, citations, usage) last."""
        svc.owned_execution(p.tenant, execution_id)
        after = int(last_event_id) if last_event_id and _EVENT_ID.fullmatch(last_event_id) else 0
        poll = st.events_poll_seconds

        async def stream() -> AsyncIterator[ServerSentEvent]:
            nonlocal after
            grace = False
            while True:
                evs = svc.meta.get_events(execution_id, after=after)
                for e in evs:
                    after = e["id"]
                    yield ServerSentEvent(data=json.dumps(e["data"]), event=e["kind"], id=str(e["id"]))
                    if e["kind"] == "final":
                        return
                if evs:
                    continue
                if not follow:
                    return
                if svc.is_finished(execution_id):
                    if grace:
                        return
                    grace = True  # its final event may be a moment behind its status
                if await request.is_disconnected():
                    return
                await asyncio.sleep(poll)

        return EventSourceResponse(stream(), ping=15)

    @app.get("/v1/executions/{execution_id}/trace", tags=["executions"], responses=_ERRORS)
    async def execution_trace(execution_id: str, p: Principal = auth) -> dict[str, Any]:
        """The trajectory: execution, turns (messages, code, output, span log), sub-calls, children."""
        return svc.trace(p.tenant, execution_id)

    runtime_errors = {
        **_ERRORS,
        400: {"description": "Bad tool result"},
        409: {"description": "Not a running runtime execution, or a step is waiting"},
        429: {"description": "Rate limit, or too many runtime executions with a live REPL (restoring this one)"},
    }

    @app.post("/v1/executions/{execution_id}/steps", response_model=StepOut, tags=["runtime"], responses=runtime_errors)
    async def run_step(execution_id: str, body: StepIn, p: Principal = auth) -> Any:
        """Run one step in the execution's REPL. With ``sub_calls: "client"`` the answer may be
        ``waiting: true`` with ``tool_requests`` to answer through ``tools/resolve``."""
        return await svc.step(p.tenant, execution_id, body.code)

    @app.post(
        "/v1/executions/{execution_id}/tools/resolve",
        response_model=StepOut,
        tags=["runtime"],
        responses=runtime_errors,
    )
    async def resolve_tools(execution_id: str, body: ResolveIn, p: Principal = auth) -> Any:
        """Answer the waiting tool requests of the current step with the client's own
        ``results``, or let the server's models resolve ``server_ids`` (``["*"]``: all the
        others); answers like a step (maybe waiting again)."""
        results: dict[str, Any] = {}
        for r in body.results:
            if r.error is not None:
                results[r.id] = {"error": r.error}
            elif r.value is None:
                raise BadRequest(f"result {r.id!r}: give a value or an error")
            else:
                results[r.id] = r.value
        return await svc.resolve_tools(p.tenant, execution_id, results, body.server_ids)

    # -- spans and citations --------------------------------------------------------------------
    @app.post(
        "/v1/spans/get",
        response_model=SpanOut,
        tags=["citations"],
        responses={**_ERRORS, 400: {"description": "Bad offsets"}, 409: {"description": "Session not READY"}},
    )
    async def get_span(body: SpanGet, p: Principal = auth) -> Any:
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

    @app.post(
        "/v1/citations/verify",
        response_model=VerifyOut,
        tags=["citations"],
        responses={**_ERRORS, 413: {"description": "Citations cover too many characters"}},
    )
    async def verify(body: VerifyIn, p: Principal = auth) -> Any:
        """Recompute each citation's checksum against the stored canonical text (at most
        1,000 citations and 10,000,000 characters of spans a request)."""
        cites = [c.model_dump(exclude_none=True) for c in body.citations]
        checks = await asyncio.to_thread(svc.verify, p.tenant, cites)
        results = [c.__dict__ for c in checks]
        return {"all_ok": all(c.ok for c in checks), "results": results}

    app.openapi = _openapi_with(app, [SessionCreate])  # type: ignore[method-assign]
    return app
