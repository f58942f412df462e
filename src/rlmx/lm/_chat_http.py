"""A lean JSON-over-HTTP transport for chat-completions servers (private), on ``aiohttp``.

Why not the ``openai`` SDK: measured on a 2-core host (docs/benchmarks.md, "fan-out"), the
SDK costs 1.5–1.6 ms of client CPU per request (pydantic models, ``httpx`` pool bookkeeping
that probes every pooled socket on each request) and 0.44–0.55 s to import; a bare ``aiohttp``
session 0.09–0.10 ms per request and 0.13–0.16 s to import (``benchmarks/fanout.py --bare-sdk``
/ ``--server-ceiling --latency-ms 0 --prompts 2000``, "client CPU"; ``python -X importtime -c
"import openai"`` / ``aiohttp``). With 64 requests in flight on one event loop that CPU is
the difference between 3× and ≈ 1.1× the ideal wall time of a fan-out.

:class:`JsonPoster` keeps **one keep-alive connection pool per event loop** (an
``aiohttp.ClientSession`` belongs to the loop that made it; a second ``asyncio.run`` gets a
new one) with no cap of its own: how many requests run at once is the job of
:class:`~rlmx.lm.wrappers.ConcurrencyLimitedLM`. It honours ``HTTPS_PROXY``/``HTTP_PROXY``/
``NO_PROXY`` (:func:`proxy_for`, once per endpoint) and verifies TLS against ``SSL_CERT_FILE`` when
set, else certifi's bundle (what the SDK used), else the system's.

Errors are :class:`~rlmx.errors.ProviderError` through :mod:`rlmx.lm._errors`: timeouts and
connection failures are retryable transport errors; an HTTP status ≥ 400 is returned to the
caller as a :class:`JsonResponse` (the caller knows the provider's error body and hints).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import ssl
import urllib.request
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from rlmx.errors import ProviderError
from rlmx.lm._errors import transport_error

__all__ = ["JsonPoster", "JsonResponse", "error_detail", "proxy_for"]


@dataclass
class JsonResponse:
    """A response: HTTP ``status``, lower-cased ``headers`` and the decoded JSON ``body``
    (None when the body was not JSON; ``text`` then holds up to 2,000 characters of it)."""

    status: int
    headers: dict[str, str]
    body: Any
    text: str = ""


def error_detail(resp: JsonResponse) -> str:
    """The server's error message (``{"error": {"message": ...}}`` or ``{"error": "..."}``,
    the OpenAI and most compatible servers' shape), else the start of the body."""
    body = resp.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return resp.text[:500] or (json.dumps(body)[:500] if body is not None else "")


async def _closed_with_the_loop(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Started once per pool: the loop's ``shutdown_asyncgens`` (which ``asyncio.run`` calls
    before it closes the loop) finalizes it, and so closes the pool on the loop it belongs to
    even when nobody called :meth:`JsonPoster.aclose`."""
    try:
        yield
    finally:
        await session.close()


def proxy_for(url: str) -> str | None:
    """The proxy URL for ``url`` from ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and
    ``NO_PROXY`` (the stdlib's rules), or None. Looked up once per endpoint: aiohttp's own
    ``trust_env`` looks it up (and reads ``~/.netrc``) in a worker thread on every request."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """The TLS context of every pool (made on the first ``https`` request: loading a CA
    bundle costs ≈ 40 ms, which a plain-``http`` local server never needs)."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class JsonPoster:
    """POSTs JSON and reads JSON back over one keep-alive pool per event loop.

    ``label`` names the endpoint in error messages (``"openai:gpt-5 at https://..."``);
    ``timeout_s`` bounds each whole request (connect + send + read), in seconds.
    """

    def __init__(self, label: str, timeout_s: float) -> None:
        self.label = label
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._keeper: AsyncGenerator[None, None] | None = None
        self._proxies: dict[str, str | None] = {}

    async def _session_for_loop(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            )
            self._loop = loop
            self._keeper = _closed_with_the_loop(self._session)
            await self._keeper.__anext__()
        return self._session

    async def request(
        self, method: str, url: str, *, headers: dict[str, str], payload: dict[str, Any] | None = None
    ) -> JsonResponse:
        """One request; returns the response whatever its status.

        Raises ProviderError (retryable) on a timeout, a refused or dropped connection, or a
        truncated body.
        """
        session = await self._session_for_loop()
        origin = url.split("?", 1)[0]
        if origin not in self._proxies:
            self._proxies[origin] = proxy_for(origin)
        data = None if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        hdrs = {"Content-Type": "application/json", **headers} if data is not None else headers
        try:
            async with session.request(
                method,
                url,
                data=data,
                headers=hdrs,
                proxy=self._proxies[origin],
                ssl=_ssl_context() if url.startswith("https:") else True,
            ) as resp:
                raw = await resp.read()
                status = resp.status
                resp_headers = {k.lower(): v for k, v in resp.headers.items()}
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise transport_error(self.label, exc, timeout=True) from exc
        except aiohttp.ClientError as exc:
            raise transport_error(self.label, exc, timeout=False) from exc
        try:
            return JsonResponse(status, resp_headers, json.loads(raw))
        except ValueError:
            text = raw[:2000].decode("utf-8", "replace")
            if status < 400:
                raise ProviderError(
                    f"{self.label}: HTTP {status} with a body that is not JSON: {text[:200]!r} "
                    "(is the base URL an OpenAI-compatible /v1 endpoint?)",
                    status=status,
                    retryable=status >= 500,
                ) from None
            return JsonResponse(status, resp_headers, None, text)

    async def aclose(self) -> None:
        """Close the pool when it belongs to the running loop (else just drop it)."""
        keeper, self._keeper = self._keeper, None
        loop, self._loop = self._loop, None
        self._session = None
        if keeper is None:
            return
        try:
            same_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            await keeper.aclose()  # its ``finally`` closes the pool
