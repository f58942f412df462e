"""The HTTP plumbing of the mock LM servers (private): a Starlette app served by uvicorn on a
background thread, handing each request to an :class:`App` and writing back its JSON answer.

Why not the stdlib ``http.server``: one OS thread per connection and a blocking ``sleep``
per request made the mock the bottleneck of fan-out benchmarks (1,000 requests, 64 at a
time). Here the latency is an ``asyncio.sleep`` on the event loop, so any number of requests
wait at once for free; only the app's own (synchronous, quick) handler runs in a worker
thread when a test's script function may block (on the loop otherwise). The server's own ceiling (requests/s
at a given concurrency) is measured by ``benchmarks/fanout.py --server-ceiling``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, Self

__all__ = ["App", "BackgroundServer", "Reply", "Server", "content_text", "error_body"]

Reply = tuple[int, dict[str, Any], dict[str, str]]
"""``(HTTP status, JSON payload, extra response headers)``."""

_HANDLER_THREADS = 64
"""Worker threads for the apps' synchronous handlers (each takes well under a millisecond
unless a test's script blocks on purpose)."""


class App(Protocol):
    verbose: bool
    latency_ms: float
    """Milliseconds every POST waits (asynchronously) before its handler runs."""
    @property
    def handlers_may_block(self) -> bool:
        """True when a handler may block (a test's script function): handlers then run in
        worker threads, else on the event loop (a thread hop per request is most of the
        server's CPU)."""
        ...

    def handle_get(self, path: str) -> Reply: ...

    def handle_post(self, path: str, raw: bytes, headers: dict[str, str]) -> Reply: ...


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error payload."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def content_text(content: Any) -> str:
    """Message content as text (a string, or a list of ``{"type": "text", "text": ...}``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _asgi_app(owner: BackgroundServer, pool: ThreadPoolExecutor) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    app: App = owner  # type: ignore[assignment]

    async def endpoint(request: Request) -> Response:
        loop = asyncio.get_running_loop()
        path = request.url.path
        inline = not app.handlers_may_block
        if request.method == "GET":
            reply = app.handle_get(path) if inline else await loop.run_in_executor(pool, app.handle_get, path)
        else:
            raw = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            owner._enter()
            try:
                if app.latency_ms:
                    await asyncio.sleep(app.latency_ms / 1000.0)
                if inline:
                    reply = app.handle_post(path, raw, headers)
                else:
                    reply = await loop.run_in_executor(pool, app.handle_post, path, raw, headers)
            finally:
                owner._leave()
        status, payload, extra = reply
        out = {"x-request-id": f"req_mock_{time.monotonic_ns()}", **extra}
        return Response(json.dumps(payload), status_code=status, headers=out, media_type="application/json")

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])


class Server:
    """A running uvicorn server on a daemon thread, on a socket bound before it starts (so
    a client may connect at once: the kernel queues it, backlog 1024, until the loop
    accepts). ``server_address`` is ``(host, port)``."""

    def __init__(self, address: tuple[str, int], owner: BackgroundServer) -> None:
        import uvicorn

        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP;
        # without it a response written in two parts waits for a delayed ACK (≈ 40 ms).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(address)
        # listen() backlog: a fan-out of sub-calls opens dozens of connections at once; a
        # small backlog resets some, which clients see as connection errors.
        self._sock.listen(1024)
        self.server_address: tuple[str, int] = self._sock.getsockname()[:2]
        self._pool = ThreadPoolExecutor(_HANDLER_THREADS, thread_name_prefix=f"{owner.thread_name}-handler")
        config = uvicorn.Config(
            _asgi_app(owner, self._pool),
            log_level="info" if owner.verbose else "warning",
            access_log=owner.verbose,
            lifespan="off",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=1,
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._uvicorn.run,
            kwargs={"sockets": [self._sock]},
            daemon=True,
            name=f"{owner.thread_name}-{self.server_address[1]}",
        )
        self._thread.start()

    def close(self) -> None:
        """Stop accepting, let requests in flight finish (≤ 1 s), and close the socket."""
        self._uvicorn.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


class BackgroundServer:
    """Start/stop of a mock server's :class:`Server` on a daemon thread (the mock class is the
    :class:`App`; it sets ``host``, ``port``, ``latency_ms``, ``verbose``, and calls
    ``BackgroundServer.__init__``; ``thread_name`` names its threads). Use as a context
    manager, or ``start``/``stop``. ``peak_in_flight`` is the most POSTs served at once."""

    host: str
    port: int
    verbose: bool = False
    thread_name = "rlmx-mock"

    def __init__(self) -> None:
        self._httpd: Server | None = None
        self._flight_lock = threading.Lock()
        self._in_flight = 0
        self.peak_in_flight = 0
        """Most POST requests handled at the same time so far (latency wait included)."""

    @property
    def handlers_may_block(self) -> bool:
        """Whether a handler may block (see :class:`App`); False unless a subclass says so."""
        return False

    def _enter(self) -> None:
        with self._flight_lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._flight_lock:
            self._in_flight -= 1

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` being served. Raises RuntimeError if stopped."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not running; call start() or use `with`")
        return self._httpd.server_address

    def start(self) -> Self:
        """Listen (``port=0``: a free port) and serve on a background thread; idempotent."""
        if self._httpd is None:
            self._httpd = Server((self.host, self.port), self)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
