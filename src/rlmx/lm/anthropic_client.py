"""``anthropic:MODEL`` through the official ``anthropic`` SDK (optional extra).

Install with ``pip install 'rlmx[anthropic]'``; without it, constructing
:class:`AnthropicClient` raises ConfigError (importing rlmx never needs the package).

Mapping from the chat-message seam to the Messages API:

* ``system`` messages are joined (blank line between) into the ``system`` parameter;
* consecutive messages of the same role are merged, and a conversation that would start
  with an assistant message gets an empty-ish user turn first, as the API requires;
* ``max_tokens`` is required by the API: the client default is 8192 output tokens;
* ``temperature`` is sent (in the request body) only when set.

Usage: ``input_tokens`` counts cache reads and cache writes too (Anthropic reports them
apart); ``output_tokens`` as reported. The SDK's retries are off (``max_retries=0``).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from rlmx.errors import ConfigError, ProviderError
from rlmx.lm._errors import http_error, parse_retry_after, transport_error
from rlmx.lm.base import Completion, LMClient, Message

__all__ = ["DEFAULT_ANTHROPIC_MAX_TOKENS", "AnthropicClient", "to_anthropic_messages"]

DEFAULT_ANTHROPIC_MAX_TOKENS = 8192


def _import_anthropic() -> Any:
    try:
        import anthropic
    except ImportError as exc:
        raise ConfigError(
            "anthropic:MODEL needs the Anthropic SDK, an optional extra: pip install 'rlmx[anthropic]'"
        ) from exc
    return anthropic


def to_anthropic_messages(messages: list[Message]) -> tuple[str | None, list[dict[str, str]]]:
    """``(system text or None, messages)`` for the Messages API (rules: module docstring)."""
    system_parts: list[str] = []
    turns: list[dict[str, str]] = []
    for msg in messages:
        role, content = msg.get("role", "user"), msg.get("content", "")
        if role == "system":
            system_parts.append(content)
            continue
        role = "assistant" if role == "assistant" else "user"
        if turns and turns[-1]["role"] == role:
            turns[-1] = {"role": role, "content": turns[-1]["content"] + "\n\n" + content}
        else:
            turns.append({"role": role, "content": content})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": "(continue)"})
    return ("\n\n".join(system_parts) if system_parts else None), turns


class AnthropicClient(LMClient):
    """``anthropic:MODEL``. ``api_key`` defaults to ``ANTHROPIC_API_KEY``; ``base_url`` to
    the SDK's (``ANTHROPIC_BASE_URL`` or api.anthropic.com). ``timeout_s``: seconds per
    request; ``max_tokens``: output tokens (default 8192).

    Raises ConfigError when the SDK is not installed or no key is set.
    """

    provider = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 120.0,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> None:
        self._anthropic = _import_anthropic()
        if not model:
            raise ConfigError("anthropic: empty model name; use anthropic:MODEL")
        self.model = model
        key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ConfigError(f"anthropic:{model} needs an API key: export ANTHROPIC_API_KEY=sk-ant-...")
        self._api_key = key
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL")
        self.timeout_s = timeout_s
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._sdk: Any = None
        self._sdk_loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._sdk is None or self._sdk_loop is not loop:
            kwargs: dict[str, Any] = {
                "api_key": self._api_key,
                "timeout": self.timeout_s,
                "max_retries": 0,
            }
            if self.base_url:
                kwargs["base_url"] = self.base_url
            self._sdk = self._anthropic.AsyncAnthropic(**kwargs)
            self._sdk_loop = loop
        return self._sdk

    def _map_error(self, exc: BaseException) -> ProviderError:
        sdk = self._anthropic
        label = f"anthropic:{self.model}"
        if isinstance(exc, sdk.APITimeoutError):
            return transport_error(label, exc, timeout=True)
        if isinstance(exc, sdk.APIConnectionError):
            return transport_error(label, exc, timeout=False)
        if isinstance(exc, sdk.APIStatusError):
            hints = {
                401: "check ANTHROPIC_API_KEY",
                403: "this key has no access to the model; check ANTHROPIC_API_KEY",
                404: f"model {self.model!r} not found; check the name in anthropic:MODEL",
                529: "Anthropic is overloaded; retry later",
            }
            detail = getattr(exc, "api_message", None) or getattr(exc, "message", str(exc))
            return http_error(
                label,
                exc.status_code,
                str(detail),
                hints=hints,
                retry_after_s=parse_retry_after(dict(exc.response.headers.items())),
            )
        return ProviderError(f"{label}: {type(exc).__name__}: {exc}", retryable=False)

    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        """One Messages API call; see :meth:`rlmx.lm.base.LMClient.complete`.

        Raises ProviderError (``retryable`` for 408/409/429/5xx/529, timeouts, connection).
        """
        system, turns = to_anthropic_messages(messages)
        # The turns go as extra_body (the same JSON, replacing ``messages``): the SDK's typed
        # transform would walk the whole history on every call (see OpenAIClient.complete).
        extra: dict[str, Any] = {"messages": turns}
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [],
            "max_tokens": max_tokens or self.max_tokens or DEFAULT_ANTHROPIC_MAX_TOKENS,
            "extra_body": extra,
        }
        if system is not None:
            params["system"] = system
        temp = temperature if temperature is not None else self.temperature
        if temp is not None:
            extra["temperature"] = temp
        started = time.perf_counter()
        try:
            resp = await self._client().messages.create(**params)
        except self._anthropic.AnthropicError as exc:
            raise self._map_error(exc) from exc
        latency = time.perf_counter() - started
        text = "".join(getattr(block, "text", "") for block in resp.content if block.type == "text")
        usage = resp.usage
        input_tokens = (
            usage.input_tokens
            + (getattr(usage, "cache_creation_input_tokens", None) or 0)
            + (getattr(usage, "cache_read_input_tokens", None) or 0)
        )
        return Completion(
            text=text,
            input_tokens=input_tokens,
            output_tokens=usage.output_tokens,
            provider=self.provider,
            model=self.model,
            latency_s=latency,
            raw={"id": resp.id, "finish_reason": resp.stop_reason, "response_model": resp.model},
        )

    async def aclose(self) -> None:
        sdk, self._sdk = self._sdk, None
        if sdk is not None:
            try:
                same_loop = asyncio.get_running_loop() is self._sdk_loop
            except RuntimeError:
                same_loop = False
            if same_loop:
                await sdk.close()
        self._sdk_loop = None
