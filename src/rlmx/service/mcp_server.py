"""The MCP server (official ``mcp`` SDK 2.x, :class:`mcp.server.MCPServer`): ``rlmx mcp``.

Tools: ``create_session`` (from paths), ``list_sessions``, ``ask`` (answerer mode, with
progress notifications per turn), ``get_execution``, ``start_runtime`` / ``run_step`` /
``resolve_tools`` (runtime mode), ``get_span``, ``verify_citations``. They call the same
:class:`~rlmx.service.core.Service` as the HTTP API, for one tenant (``--tenant``), on the
same store, so sessions and executions made here are visible over HTTP with a key of that
tenant and vice versa.

``ask`` with ``sub_calls="client"`` resolves sub-calls (``llm_query``) with the MCP
client's own model through sampling (``sampling/createMessage``) when the client declares
the sampling capability. Paths: over stdio any readable path when ``RLMX_ALLOWED_PATHS`` is
empty (the local user runs the server), else only paths under it; over HTTP always only
paths under ``RLMX_ALLOWED_PATHS``, and every request needs an API key of the tenant.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import mcp_types as mt
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import RlmxError
from ..lm.base import Completion, LMClient, Message, estimate_tokens
from .core import BadRequest, Service, ServiceError
from .worker import heartbeat

__all__ = ["SamplingLM", "build_mcp_server", "require_key"]

T = TypeVar("T")


class SamplingLM(LMClient):
    """The MCP client's own model as an LM client: each call is a ``sampling/createMessage``
    request to the client (system messages become its system prompt)."""

    provider = "mcp"

    def __init__(self, ctx: Context[Any, Any], max_tokens: int = 2000, model: str = "client"):
        self.ctx = ctx
        self.model = model
        self.max_tokens = max_tokens

    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
        msgs = [
            mt.SamplingMessage(
                role="assistant" if m["role"] == "assistant" else "user", content=mt.TextContent(text=m["content"])
            )
            for m in messages
            if m["role"] != "system"
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sampling is deprecated as of 2026-07-28, still served by clients
            result = await self.ctx.session.create_message(
                msgs, max_tokens=max_tokens or self.max_tokens, system_prompt=system, temperature=temperature
            )
        content = result.content
        text = content.text if isinstance(content, mt.TextContent) else str(content)
        prompt = "".join(m["content"] for m in messages)
        return Completion(
            text, estimate_tokens(prompt), estimate_tokens(text), self.provider, result.model or self.model
        )


def _supports_sampling(ctx: Context[Any, Any]) -> bool:
    """The client declared sampling, on a connection with a back-channel for server-initiated
    requests (handshake-era protocol versions; 2026-07-28 connections have none)."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return False
    try:
        return bool(ctx.session.check_client_capability(mt.ClientCapabilities(sampling=mt.SamplingCapability())))
    except Exception:
        return False


async def _call(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return await fn()
    except ServiceError as e:
        raise ToolError(f"{e.status}: {e.message}") from None
    except RlmxError as e:
        raise ToolError(f"{type(e).__name__}: {e}") from None


def build_mcp_server(service: Service, tenant: str, *, transport: Literal["stdio", "http"] = "stdio") -> MCPServer:
    """The MCP server for ``tenant`` over ``service`` (see the module doc)."""
    server: MCPServer = MCPServer(
        "rlmx",
        instructions=(
            "Recursive Language Models over document corpora: create a session from paths, then ask "
            "questions (answers carry verifiable citations) or drive a runtime REPL step by step."
        ),
    )
    any_path = transport == "stdio" and not service.settings.allowed_roots()
    worker_id = f"mcp:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"

    def check_path(raw: str) -> Path:
        if not any_path:
            return service.check_path(raw)
        p = Path(raw).expanduser().resolve()
        if not p.exists():
            raise BadRequest(f"path {raw!r} does not exist")
        return p

    @server.tool()
    async def create_session(paths: list[str], wait: bool = True) -> dict[str, Any]:
        """Create a session from files or folders (text, Markdown, HTML, PDF, DOCX, code).
        With wait (default) the documents are ingested before this returns."""

        async def run() -> dict[str, Any]:
            if not paths:
                raise BadRequest("give one or more paths")
            inputs = [{"source_name": check_path(p).name, "path": str(check_path(p))} for p in paths]
            rec = await asyncio.to_thread(service.create_session, tenant, inputs, queue=not wait)
            if wait:
                await asyncio.to_thread(service.ingest_session, rec.session_id)
            return service.session_view(await asyncio.to_thread(service.get_session, tenant, rec.session_id))

        return await _call(run)

    @server.tool()
    async def list_sessions() -> dict[str, Any]:
        """The sessions of this tenant, newest first."""

        async def run() -> dict[str, Any]:
            return {
                "sessions": [service.session_view(s) for s in await asyncio.to_thread(service.list_sessions, tenant)]
            }

        return await _call(run)

    @server.tool()
    async def ask(
        session_id: str,
        question: str,
        ctx: Context[Any, Any],
        model: str | None = None,
        sub_model: str | None = None,
        max_turns: int | None = None,
        sub_calls: Literal["server", "client"] = "server",
    ) -> dict[str, Any]:
        """Answer a question over a READY session (answerer mode): the answer, its numbered
        citations (document, offsets, sha256), status, usage and cost. Progress is reported
        per turn. sub_calls="client": sub-LM calls go to this MCP client's model (sampling)."""

        async def run() -> dict[str, Any]:
            sub_lm: LMClient | None = None
            if sub_calls == "client":
                if not _supports_sampling(ctx):
                    raise BadRequest(
                        "sub_calls='client' needs MCP sampling: a client that declares it, on a handshake-era "
                        "connection (protocol 2025-11-25 or older; 2026-07-28 connections cannot send "
                        "server-initiated requests). Otherwise use sub_calls='server', or start_runtime with "
                        "sub_calls='client' and answer the tool requests with resolve_tools."
                    )
                sub_lm = SamplingLM(ctx)
            request: dict[str, Any] = {"question": question, "models": {"root": model, "sub": sub_model}}
            if max_turns is not None:
                request["budgets"] = {"max_turns": max_turns}
            created = await asyncio.to_thread(service.create_execution, tenant, session_id, request, run_here=worker_id)
            eid = created["execution_id"]
            total = float(max_turns or 30)
            loop = asyncio.get_running_loop()
            notes: list[asyncio.Task[None]] = []

            def progress(kind: str, data: dict[str, Any]) -> None:
                if kind == "turn_finished" and data.get("depth") == 0:
                    msg = f"turn {data['turn']} done"
                    notes.append(loop.create_task(ctx.report_progress(float(data["turn"]), total, msg)))

            job = await asyncio.to_thread(service.meta.get_job, eid)
            assert job is not None
            task = asyncio.current_task()
            assert task is not None
            lost = False
            inner: asyncio.Future[None] | None = None

            def on_lost() -> None:  # the lease went to another worker: stop, write nothing more
                nonlocal lost
                if not lost:
                    lost = True
                    if inner is not None:
                        loop.call_soon_threadsafe(inner.cancel)

            inner = asyncio.ensure_future(service.run_answerer(job, sub_lm=sub_lm, on_event=progress, on_lost=on_lost))
            beat = asyncio.create_task(heartbeat(service.meta, job, service.settings.lease_seconds, on_lost))
            try:
                await inner  # cancelling this request cancels the run too (and waits for its end)
            except asyncio.CancelledError:
                if task.cancelling() or not lost:
                    # the request was cancelled (or the server stops): nobody waits for the answer
                    await asyncio.shield(
                        asyncio.to_thread(service.abandon_job, job, "cancelled: the MCP request was cancelled")
                    )
                    raise
            except Exception as e:
                if not lost:
                    await asyncio.to_thread(service.fail_job, job, f"internal error: {type(e).__name__}: {e}")
                    await asyncio.to_thread(service.meta.finish_job, eid, worker_id, repr(e), job.attempts)
                raise
            else:
                await asyncio.to_thread(service.meta.finish_job, eid, worker_id, None, job.attempts)
            finally:
                beat.cancel()
                if notes:
                    await asyncio.gather(*notes, return_exceptions=True)
            if lost:
                raise ToolError(
                    f"execution {eid} was taken over by another worker (this server stopped renewing its "
                    "lease); follow it with get_execution"
                )
            return await asyncio.to_thread(service.execution_view, tenant, eid)

        return await _call(run)

    @server.tool()
    async def get_execution(execution_id: str) -> dict[str, Any]:
        """An execution's status, answer, citations, usage, budgets and last turn."""

        async def run() -> dict[str, Any]:
            return await asyncio.to_thread(service.execution_view, tenant, execution_id)

        return await _call(run)

    @server.tool()
    async def start_runtime(
        session_id: str,
        question: str | None = None,
        sub_calls: Literal["server", "client"] = "server",
        sub_model: str | None = None,
        max_turns: int | None = None,
    ) -> dict[str, Any]:
        """Start a runtime execution: you are the root LM and run Python steps in a REPL
        whose `context` is the session's documents (llm_query, FINAL, ... as in rlmx). The
        answer's `prompt` is the root system prompt rlmx gives its own root LM (read it: it
        names the documents and the REPL's helpers) and `first_message` its first user
        message; `context` has the document count, total characters and the first documents'
        names and lengths. max_turns: the step budget (default 30).
        sub_calls="client": llm_query inside a step waits for your answer (resolve_tools)."""

        async def run() -> dict[str, Any]:
            request: dict[str, Any] = {"sub_calls": sub_calls, "models": {"sub": sub_model}}
            if question:
                request["question"] = question
            if max_turns is not None:
                request["budgets"] = {"max_turns": max_turns}
            return await service.create_runtime(tenant, session_id, request)

        return await _call(run)

    @server.tool()
    async def run_step(
        execution_id: str, code: str, include: list[Literal["stdout", "span_log"]] | None = None
    ) -> dict[str, Any]:
        """Run one step (Python code, bare or in a ```repl block) in a runtime execution's
        REPL: `observation` (the output, head + tail when long, as rlmx's root LM sees it),
        `turns_left`, `last_turn`, `budget_left`, error, waiting tool requests, and the final
        answer with citations when the code calls FINAL. After the last turn, `final_request`
        asks for the answer: one closing step with FINAL(...) gives it. include=["stdout"]
        adds the whole output, ["span_log"] the span log."""

        async def run() -> dict[str, Any]:
            return await service.step(tenant, execution_id, code, set(include or ()))

        return await _call(run)

    @server.tool()
    async def resolve_tools(
        execution_id: str,
        results: dict[str, str | list[str]] | None = None,
        server_ids: list[str] | None = None,
        include: list[Literal["stdout", "span_log"]] | None = None,
    ) -> dict[str, Any]:
        """Answer a waiting step's tool requests: results maps request id -> your answer (a
        list of strings for a batch); server_ids are resolved by the server (["*"]: all)."""

        async def run() -> dict[str, Any]:
            return await service.resolve_tools(
                tenant, execution_id, dict(results or {}), list(server_ids or []), set(include or ())
            )

        return await _call(run)

    @server.tool()
    async def get_span(
        start: int, end: int, doc_id: str | None = None, session_id: str | None = None, doc_index: int | None = None
    ) -> dict[str, Any]:
        """The canonical text of [start, end) (code points) of a document (by doc_id, or by
        session_id and doc_index) with its SpanRef (checksum)."""

        async def run() -> dict[str, Any]:
            return await asyncio.to_thread(
                service.get_span,
                tenant,
                doc_id=doc_id,
                session_id=session_id,
                doc_index=doc_index,
                start=start,
                end=end,
            )

        return await _call(run)

    @server.tool()
    async def verify_citations(citations: list[dict[str, Any]]) -> dict[str, Any]:
        """Recompute citations' checksums ({doc_id, start, end, checksum}) against the stored text."""

        async def run() -> dict[str, Any]:
            checks = await asyncio.to_thread(service.verify, tenant, citations)
            return {"all_ok": all(c.ok for c in checks), "results": [c.__dict__ for c in checks]}

        return await _call(run)

    return server


def require_key(app: ASGIApp, service: Service, tenant: str) -> ASGIApp:
    """Wrap the MCP HTTP app: every request needs ``Authorization: Bearer`` with a key of
    ``tenant`` (401 otherwise)."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            auth = headers.get("authorization", "")
            p = (
                await asyncio.to_thread(service.keys.check, auth[7:].strip())
                if auth.lower().startswith("bearer ")
                else None
            )
            if p is None or p.tenant != tenant:
                body = b'{"detail": "missing or invalid API key for this MCP server\'s tenant"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded
