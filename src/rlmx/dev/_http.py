"""The HTTP plumbing of the mock LLM server (private): a threaded stdlib server whose
handler hands each request to an :class:`App` and writes back its JSON answer."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

__all__ = ["App", "Reply", "Server", "content_text", "error_body"]

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
