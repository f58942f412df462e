"""The HTTP plumbing of the mock LLM server (private): a threaded stdlib server whose
handler hands each request to an :class:`App` and writes back its JSON answer."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

__all__ = ["App", "BackgroundServer", "Reply", "Server", "content_text", "error_body"]

Reply = tuple[int, dict[str, Any], dict[str, str]]
"""``(HTTP status, JSON payload, extra response headers)``."""


class App(Protocol):
    verbose: bool

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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server
    timeout = 30  # seconds an idle keep-alive connection is kept
    # TCP_NODELAY: the headers and the body are two writes; with Nagle's algorithm the
    # second waits for the client's delayed ACK, adding ~40 ms to every response.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.app.verbose:
            super().log_message(format, *args)

    def _send(self, reply: Reply) -> None:
        status, payload, headers = reply
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_mock_{time.monotonic_ns()}")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(self.server.app.handle_get(urlsplit(self.path).path))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        self._send(self.server.app.handle_post(urlsplit(self.path).path, raw, headers))


class Server(ThreadingHTTPServer):
    """A threaded HTTP server (daemon threads) that routes requests to ``app``."""

    daemon_threads = True
    block_on_close = False
    # listen() backlog: socketserver's default of 5 resets connections when a client opens
    # dozens at once (a fan-out of sub-calls), which clients see as connection errors.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], app: App) -> None:
        super().__init__(address, _Handler)
        self.app = app


class BackgroundServer:
    """Start/stop of a mock server's :class:`Server` on a daemon thread (the mock class is the
    :class:`App`; it sets ``host``, ``port``, ``_httpd = None`` and ``_thread = None``, and
    names its thread with ``thread_name``). Use as a context manager, or ``start``/``stop``."""

    host: str
    port: int
    thread_name = "rlmx-mock"
    _httpd: Server | None
    _thread: threading.Thread | None

    def start(self) -> Self:
        """Listen (``port=0``: a free port) and serve on a background thread; idempotent."""
        if self._httpd is not None:
            return self
        httpd = Server((self.host, self.port), self)  # type: ignore[arg-type]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"{self.thread_name}-{httpd.server_address[1]}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
