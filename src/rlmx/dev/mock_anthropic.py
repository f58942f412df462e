"""A local HTTP server speaking the Anthropic Messages protocol, for tests.

Like :mod:`rlmx.dev.mock_llm` it is a real server on ``127.0.0.1`` (stdlib
``ThreadingHTTPServer`` in a background thread), so the real ``anthropic`` SDK path is
exercised: request encoding, headers, response parsing, error classes::

    with MockAnthropicServer(scripts={"claude-x": ["hi"]}, faults=[429, 529]) as srv:
        client = AnthropicClient("claude-x", base_url=srv.url, api_key="test")

Endpoint
    ``POST /v1/messages`` (non-streaming; ``"stream": true`` answers 400).

Replies, in order of precedence
    1. ``faults``: HTTP statuses returned for the first requests, in order
       (``[429, 529, 500]``), with Anthropic's error body ``{"type": "error", "error":
       {"type": ..., "message": ...}}``; 429 and 529 carry ``retry-after`` (``retry_after``,
       default ``"0"``).
    2. ``api_key``: when set, a request without ``x-api-key: KEY`` (or, as recent SDKs
       send it, ``Authorization: Bearer KEY``) gets 401
       (``authentication_error``). A request without ``anthropic-version`` gets 400.
    3. ``scripts``: a callable ``(model, system, messages) -> str``, or a mapping from model
       name (``"*"``: any model) to a list of replies consumed in order. An exhausted list
       answers 400.
    4. ``default``: ``"echo"`` repeats the last user message; any other string is the reply.

The response has the real shape: ``id``, ``type: "message"``, ``role``, ``model``,
``content`` (a ``thinking`` block first when ``thinking`` is set, then one ``text`` block),
``stop_reason`` (``"end_turn"``, or ``"max_tokens"`` when the reply was cut to
``max_tokens`` × 4 characters), ``stop_sequence`` and ``usage`` with ``input_tokens``
(≈ characters of system + messages / 4), ``output_tokens`` (≈ characters of the reply / 4),
``cache_creation_input_tokens`` and ``cache_read_input_tokens`` (constructor arguments,
default 0). Every request is recorded (:attr:`MockAnthropicServer.requests`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rlmx.dev._http import BackgroundServer, Reply, content_text
from rlmx.dev.mock_llm import MockRequest

__all__ = ["AnthropicScriptFn", "MockAnthropicServer"]

AnthropicScriptFn = Callable[[str, str | None, list[dict[str, Any]]], str]
"""A reply function: ``(model, system text or None, messages) -> reply text``."""

_ERRORS = {
    400: ("invalid_request_error", "bad request (injected fault)"),
    401: ("authentication_error", "invalid x-api-key (injected fault)"),
    403: ("permission_error", "no access (injected fault)"),
    404: ("not_found_error", "model not found (injected fault)"),
    429: ("rate_limit_error", "rate limit reached (injected fault)"),
    500: ("api_error", "internal server error (injected fault)"),
    529: ("overloaded_error", "Overloaded (injected fault)"),
}


def _tokens(chars: int) -> int:
    return max(1, (chars + 3) // 4)


def anthropic_error(status: int, message: str | None = None) -> dict[str, Any]:
    """Anthropic's error payload for ``status``."""
    kind, text = _ERRORS.get(status, ("api_error", f"server error {status} (injected fault)"))
    return {"type": "error", "error": {"type": kind, "message": message or text}}


class MockAnthropicServer(BackgroundServer):
    """An Anthropic-Messages-compatible server on a background thread.

    ``port=0`` picks a free port. ``latency_ms``: milliseconds slept before each reply (for
    timeout tests). ``faults``, ``scripts``, ``default``, ``api_key``, ``thinking``,
    ``cache_read_tokens``, ``cache_creation_tokens``: see the module docstring.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. Thread-safe.
    """

    thread_name = "rlmx-mock-anthropic"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_ms: float = 0,
        faults: Sequence[int] | None = None,
        retry_after: str = "0",
        scripts: Mapping[str, Sequence[str]] | AnthropicScriptFn | None = None,
        default: str = "echo",
        api_key: str | None = None,
        thinking: str | None = None,
        cache_read_tokens: int = 0,
        cache_creation_tokens: int = 0,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.latency_ms = latency_ms
        self.retry_after = retry_after
        self.default = default
        self.api_key = api_key
        self.thinking = thinking
        self.cache_read_tokens = cache_read_tokens
        self.cache_creation_tokens = cache_creation_tokens
        self.verbose = verbose
        self._lock = threading.Lock()
        self._faults = list(faults or [])
        self._fn: AnthropicScriptFn | None = scripts if callable(scripts) else None
        self._queues: dict[str, list[str]] = {}
        if scripts is not None and not callable(scripts):
            for model, replies in scripts.items():
                if isinstance(replies, str):
                    raise TypeError("a script is a list of replies, not a single string")
                self._queues[model] = list(replies)
        self._requests: list[MockRequest] = []
        self._counter = 0
        BackgroundServer.__init__(self)

    def add_faults(self, *statuses: int) -> None:
        """Queue HTTP statuses for the next requests."""
        with self._lock:
            self._faults.extend(statuses)

    @property
    def requests(self) -> list[MockRequest]:
        """A copy of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def handlers_may_block(self) -> bool:
        """True when a script function is set (it may block): requests then run in threads."""
        return self._fn is not None

    @property
    def url(self) -> str:
        """``http://HOST:PORT``, the value for ``ANTHROPIC_BASE_URL`` (the SDK adds ``/v1``).

        Raises RuntimeError if stopped."""
        host, port = self.address
        return f"http://{host!s}:{port}"

    # request handling (called from handler threads) --------------------------------
    def handle_get(self, path: str) -> Reply:
        return 404, anthropic_error(404, f"no route GET {path}"), {}

    def handle_post(self, path: str, raw: bytes, headers: dict[str, str]) -> Reply:
        path = path.rstrip("/")
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
        except ValueError as exc:
            body = {}
            bad_json: str | None = f"invalid JSON body: {exc}"
        else:
            bad_json = None
        model = body.get("model")
        messages = body.get("messages")

        def answer(status: int, payload: dict[str, Any], extra: dict[str, str] | None = None) -> Reply:
            msgs = messages if isinstance(messages, list) else []
            with self._lock:
                self._requests.append(
                    MockRequest(path, model if isinstance(model, str) else None, msgs, status, body, headers)
                )
            return status, payload, extra or {}

        if path != "/v1/messages":
            return answer(404, anthropic_error(404, f"no route POST {path}"))
        if bad_json:
            return answer(400, anthropic_error(400, bad_json))
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            extra = {"retry-after": self.retry_after} if fault in (429, 529) else {}
            return answer(fault, anthropic_error(fault), extra)
        if self.api_key is not None:
            given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
            if given != self.api_key:
                return answer(401, anthropic_error(401, "invalid x-api-key"))
        if not headers.get("anthropic-version"):
            return answer(400, anthropic_error(400, "anthropic-version header is required"))
        if not isinstance(model, str) or not model:
            return answer(400, anthropic_error(400, "model: Field required"))
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return answer(400, anthropic_error(400, "messages: a non-empty list is required"))
        if messages[0].get("role") != "user":
            return answer(400, anthropic_error(400, "messages: the first message must use the user role"))
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return answer(400, anthropic_error(400, "max_tokens: Field required"))
        if body.get("stream"):
            return answer(400, anthropic_error(400, "streaming is not supported by the mock"))
        system = body.get("system")
        system_text = content_text(system) if system is not None else None
        try:
            reply = self._reply(model, system_text, messages)
        except LookupError as exc:
            return answer(400, anthropic_error(400, str(exc)))
        except Exception as exc:  # a broken script function: answer 500, keep serving
            return answer(500, anthropic_error(500, f"mock: script raised {type(exc).__name__}: {exc}"))
        return answer(200, self._message(model, system_text, messages, reply, max_tokens))

    def _reply(self, model: str, system: str | None, messages: list[dict[str, Any]]) -> str:
        if self._fn is not None:
            return str(self._fn(model, system, messages))
        with self._lock:
            queue = self._queues.get(model, self._queues.get("*"))
            if queue is not None:
                if not queue:
                    raise LookupError(f"mock: script for model {model!r} exhausted")
                return queue.pop(0)
        if self.default != "echo":
            return self.default
        for msg in reversed(messages):
            if msg.get("role") == "user":
                return content_text(msg.get("content"))
        return ""

    def _message(
        self, model: str, system: str | None, messages: list[dict[str, Any]], reply: str, max_tokens: int
    ) -> dict[str, Any]:
        stop_reason = "end_turn"
        if len(reply) > max_tokens * 4:
            reply, stop_reason = reply[: max_tokens * 4], "max_tokens"
        prompt_chars = len(system or "") + sum(len(content_text(m.get("content"))) for m in messages)
        with self._lock:
            self._counter += 1
            n = self._counter
        content: list[dict[str, Any]] = []
        if self.thinking is not None:
            content.append({"type": "thinking", "thinking": self.thinking, "signature": "sig_mock"})
        content.append({"type": "text", "text": reply})
        return {
            "id": f"msg_mock{n:06d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": _tokens(prompt_chars),
                "output_tokens": _tokens(len(reply)),
                "cache_creation_input_tokens": self.cache_creation_tokens,
                "cache_read_input_tokens": self.cache_read_tokens,
            },
        }
