"""A local HTTP server speaking the OpenAI chat-completions protocol, for tests and demos.

It is a real server on ``127.0.0.1`` (uvicorn + Starlette on a background thread;
:mod:`rlmx.dev._http`), so the real HTTP client path, retries and usage accounting are
exercised; ``latency_ms`` is an asynchronous wait, so thousands of requests may wait at once::

    with MockLLMServer(scripts={"root": ["```repl\\nFINAL('x')\\n```"]}, faults=[429]) as srv:
        client = OpenAIClient("root", base_url=srv.base_url, api_key="test")

Endpoints
    ``POST /v1/chat/completions`` (also ``/chat/completions``), the Azure form
    ``POST /openai/deployments/{name}/chat/completions?api-version=...`` (the deployment
    name is the model), ``GET /v1/models``. Streaming is not supported (400).

Replies, in order of precedence
    1. ``faults``: HTTP statuses returned for the first requests, in order (``[429, 500]``);
       429 carries ``Retry-After: 0``. Then ``error_rate``: random 500s (seeded by ``seed``).
    2. ``api_key``: when set, a request without ``Authorization: Bearer KEY`` or
       ``api-key: KEY`` gets 401.
    3. ``scripts``: a callable ``(model, messages) -> str``, or a mapping from model name
       (``"*"`` matches any model) to a list of replies consumed in order or to such a
       callable. An exhausted list answers 400 ``"script for model ... exhausted"``.
    4. ``default``: ``"echo"`` repeats the last user message; any other string is the reply.

Usage is realistic in shape: ``prompt_tokens`` ≈ characters of all message contents / 4,
``completion_tokens`` ≈ characters of the reply / 4, ``total_tokens`` their sum. A
``max_tokens`` / ``max_completion_tokens`` cap truncates the reply to 4 characters a token
with ``finish_reason="length"``. Every request is recorded (:attr:`MockLLMServer.requests`);
``peak_in_flight`` is the most chat requests served at once.
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlmx.dev._http import BackgroundServer, Reply, content_text, error_body

__all__ = ["MockLLMServer", "MockRequest", "ScriptFn", "load_script_file", "serve"]

ScriptFn = Callable[[str, list[dict[str, Any]]], str]
"""A reply function: ``(model, messages) -> reply text``."""

_AZURE_PATH = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")
_CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")


def _tokens(chars: int) -> int:
    return max(1, (chars + 3) // 4)


@dataclass
class MockRequest:
    """One request the server received: ``status`` is the HTTP status it answered;
    ``headers`` have lower-case names."""

    path: str
    model: str | None
    messages: list[dict[str, Any]]
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


_FAULT_TEXT = {
    400: ("bad request (injected fault)", "invalid_request_error"),
    401: ("invalid API key (injected fault)", "authentication_error"),
    404: ("model not found (injected fault)", "not_found_error"),
    429: ("rate limit reached (injected fault)", "rate_limit_error"),
}


class MockLLMServer(BackgroundServer):
    """An OpenAI-compatible chat-completions server on a background thread.

    ``port=0`` picks a free port. ``latency_ms``: milliseconds slept before each reply.
    ``error_rate``: probability (0..1) of a random 500. ``faults``, ``scripts``,
    ``default``, ``api_key``: see the module docstring. ``seed`` seeds ``error_rate``.
    ``include_usage=False`` leaves ``usage`` out of responses (like some compatible servers).

    Use as a context manager, or call :meth:`start` / :meth:`stop`. Thread-safe.
    """

    thread_name = "rlmx-mock-llm"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_ms: float = 0,
        error_rate: float = 0.0,
        faults: Sequence[int] | None = None,
        scripts: Mapping[str, Sequence[str] | ScriptFn] | ScriptFn | None = None,
        default: str = "echo",
        seed: int = 0,
        api_key: str | None = None,
        include_usage: bool = True,
        verbose: bool = False,
    ) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        self.host = host
        self.port = port
        self.latency_ms = latency_ms
        self.error_rate = error_rate
        self.default = default
        self.api_key = api_key
        self.include_usage = include_usage
        self.verbose = verbose
        self._lock = threading.Lock()
        self._faults = list(faults or [])
        self._rng = random.Random(seed)
        self._fn: ScriptFn | None = scripts if callable(scripts) else None
        self._queues: dict[str, list[str]] = {}
        self._fns: dict[str, ScriptFn] = {}
        if scripts is not None and not callable(scripts):
            for model, script in scripts.items():
                self.set_script(model, script)
        self._requests: list[MockRequest] = []
        self._counter = 0
        BackgroundServer.__init__(self)

    # configuration --------------------------------------------------------------
    @property
    def handlers_may_block(self) -> bool:
        """True when a script function is set (it may block): requests then run in threads."""
        with self._lock:
            return self._fn is not None or bool(self._fns)

    def set_script(self, model: str, script: Sequence[str] | ScriptFn) -> None:
        """Replace the replies for ``model`` (``"*"``: any model without its own script)."""
        with self._lock:
            self._queues.pop(model, None)
            self._fns.pop(model, None)
            if callable(script):
                self._fns[model] = script
            elif isinstance(script, str):
                raise TypeError("a script is a list of replies, not a single string")
            else:
                self._queues[model] = list(script)

    def add_faults(self, *statuses: int) -> None:
        """Queue HTTP statuses for the next requests."""
        with self._lock:
            self._faults.extend(statuses)

    def model_names(self) -> list[str]:
        with self._lock:
            names = {*self._queues, *self._fns} - {"*"}
        return sorted(names) or ["mock"]

    # inspection -----------------------------------------------------------------
    @property
    def requests(self) -> list[MockRequest]:
        """A copy of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (also the Azure endpoint). Raises RuntimeError if stopped."""
        host, port = self.address
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``, the value for ``OPENAI_BASE_URL``."""
        return self.url + "/v1"

    @property
    def azure_endpoint(self) -> str:
        """The value for ``AZURE_OPENAI_ENDPOINT``."""
        return self.url

    # lifecycle ------------------------------------------------------------------

    # request handling (called from handler threads) --------------------------------
    def _record(self, req: MockRequest) -> None:
        with self._lock:
            self._requests.append(req)

    def handle_get(self, path: str) -> Reply:
        path = path.rstrip("/")
        if path not in ("/v1/models", "/models"):
            return 404, error_body(f"no route GET {path}", "not_found_error"), {}
        now = int(time.time())
        models = [{"id": m, "object": "model", "created": now, "owned_by": "rlmx-mock"} for m in self.model_names()]
        return 200, {"object": "list", "data": models}, {}

    def handle_post(self, path: str, raw: bytes, headers: dict[str, str]) -> Reply:
        return self._post(path.rstrip("/"), raw, headers)

    def _post(self, path: str, raw: bytes, headers: dict[str, str]) -> Reply:
        azure = _AZURE_PATH.match(path)
        if not azure and path not in _CHAT_PATHS:
            self._record(MockRequest(path, None, [], 404, {}, headers))
            return 404, error_body(f"no route POST {path}", "not_found_error"), {}
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
        except ValueError as exc:
            self._record(MockRequest(path, None, [], 400, {}, headers))
            return 400, error_body(f"invalid JSON body: {exc}", "invalid_request_error"), {}
        model = azure.group(1) if azure else body.get("model")
        messages = body.get("messages")

        def answer(status: int, payload: dict[str, Any], extra: dict[str, str] | None = None) -> Reply:
            msgs = messages if isinstance(messages, list) else []
            self._record(MockRequest(path, model, msgs, status, body, headers))
            return status, payload, extra or {}

        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
            if fault is None and self.error_rate and self._rng.random() < self.error_rate:
                fault = 500
        if fault is not None:
            text, kind = _FAULT_TEXT.get(fault, ("server error (injected fault)", "server_error"))
            extra = {"Retry-After": "0"} if fault == 429 else {}
            return answer(fault, error_body(text, kind), extra)
        if self.api_key is not None:
            given = headers.get("api-key") or headers.get("authorization", "").removeprefix("Bearer ")
            if given != self.api_key:
                return answer(
                    401,
                    error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
                )
        if not isinstance(model, str) or not model:
            return answer(400, error_body("missing 'model'", "invalid_request_error"))
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return answer(400, error_body("'messages' must be a list", "invalid_request_error"))
        if body.get("stream"):
            return answer(400, error_body("streaming is not supported", "invalid_request_error"))
        try:
            reply = self._reply(model, messages)
        except LookupError as exc:
            return answer(400, error_body(str(exc), "invalid_request_error"))
        except Exception as exc:  # a broken script function: answer 500, keep serving
            msg = f"mock: script for model {model!r} raised {type(exc).__name__}: {exc}"
            return answer(500, error_body(msg, "server_error"))
        return answer(200, self._completion(model, messages, reply, body))

    def _reply(self, model: str, messages: list[dict[str, Any]]) -> str:
        with self._lock:
            fn = self._fn or self._fns.get(model)
            queue = None if fn else self._queues.get(model)
            if fn is None and queue is None:
                fn = self._fns.get("*")
                queue = None if fn else self._queues.get("*")
            if queue is not None:
                if not queue:
                    raise LookupError(f"mock: script for model {model!r} exhausted")
                return queue.pop(0)
        if fn is not None:
            return str(fn(model, messages))
        if self.default != "echo":
            return self.default
        for msg in reversed(messages):
            if msg.get("role") == "user":
                return content_text(msg.get("content"))
        return ""

    def _completion(
        self, model: str, messages: list[dict[str, Any]], reply: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        finish = "stop"
        cap = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(cap, int) and cap > 0 and len(reply) > cap * 4:
            reply, finish = reply[: cap * 4], "length"
        prompt_chars = sum(len(content_text(m.get("content"))) for m in messages)
        prompt_tokens, completion_tokens = _tokens(prompt_chars), _tokens(len(reply))
        with self._lock:
            self._counter += 1
            n = self._counter
        out: dict[str, Any] = {
            "id": f"chatcmpl-mock{n:06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_rlmx_mock",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        if not self.include_usage:
            del out["usage"]
        return out


def load_script_file(path: str | Path) -> dict[str, list[str]]:
    """Read a script file for :func:`serve`.

    Formats: a JSON object ``{"MODEL": ["reply", ...], ...}`` (``"*"`` for any model), or a
    JSON list of replies (used for every model). Raises ValueError on any other shape.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, list) and all(isinstance(x, str) for x in data):
        return {"*": data}
    if isinstance(data, dict) and all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in data.values()
    ):
        return {str(k): list(v) for k, v in data.items()}
    raise ValueError(f"{path}: expected a JSON list of replies or an object mapping model -> list of replies")


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    latency_ms: float = 0,
    error_rate: float = 0.0,
    script_file: str | Path | None = None,
    *,
    default: str = "echo",
    seed: int = 0,
    faults: Sequence[int] | None = None,
    verbose: bool = True,
) -> None:
    """Run a :class:`MockLLMServer` in the foreground until Ctrl-C (``rlmx dev mock-llm``).

    Prints the base URL and how to point rlmx at it on stderr; ``verbose``: a line per request.
    """
    scripts = load_script_file(script_file) if script_file else None
    srv = MockLLMServer(
        host,
        port,
        latency_ms=latency_ms,
        error_rate=error_rate,
        faults=faults,
        scripts=scripts,
        default=default,
        seed=seed,
        verbose=verbose,
    )
    model = next((m for m in scripts or {} if m != "*"), "mock")
    with srv:
        print(
            f"rlmx mock LLM serving on {srv.base_url}\n"
            f"  export OPENAI_BASE_URL={srv.base_url} OPENAI_API_KEY=mock "
            f"RLMX_MODEL=openai:{model}\n  Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("rlmx mock LLM stopped", file=sys.stderr)
