"""OpenAI and Azure OpenAI chat models through the official ``openai`` SDK.

* :class:`OpenAIClient` (``openai:MODEL``) talks to api.openai.com or to any
  OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenRouter...) through
  ``OPENAI_BASE_URL``. The key comes from ``OPENAI_API_KEY``; a compatible server that
  needs no key gets the placeholder ``"EMPTY"``.
* :class:`AzureOpenAIClient` (``azure:DEPLOYMENT``) uses ``AZURE_OPENAI_ENDPOINT``,
  ``AZURE_OPENAI_API_KEY`` and ``OPENAI_API_VERSION``; the model is the deployment name.

The SDK's own retries are off (``max_retries=0``): retrying is the job of
:class:`~rlmx.lm.wrappers.RetryingLM`, which uses the ``retryable`` flag and the
``retry_after_s`` hint of the :class:`~rlmx.errors.ProviderError` raised here.

Request parameters: ``temperature`` and the output-token cap are sent only when set
(reasoning models such as gpt-5 reject a non-default temperature). The cap is sent as
``max_completion_tokens`` to api.openai.com and Azure (reasoning models reject
``max_tokens``) and as ``max_tokens`` to every other base URL, since that is the name
OpenAI-compatible servers (vLLM, llama.cpp, Ollama) have always accepted; pass
``max_tokens_param`` to override.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Literal

import openai

from rlmx.errors import ConfigError, ProviderError
from rlmx.lm._errors import http_error, parse_retry_after, transport_error
from rlmx.lm.base import Completion, LMClient, Message, estimate_tokens

__all__ = ["AzureOpenAIClient", "OpenAIClient"]

MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _error_detail(exc: openai.APIStatusError) -> str:
    """The server's own error message (``{"error": {"message": ...}}``), else the SDK's."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return exc.message


class _OpenAICompatible(LMClient):
    """Shared request/response/error handling for the OpenAI and Azure clients."""

    max_tokens_param: MaxTokensParam = "max_tokens"
    timeout_s: float = 120.0

    def __init__(self) -> None:
        self._sdk: openai.AsyncOpenAI | None = None
        self._sdk_loop: asyncio.AbstractEventLoop | None = None

    # subclasses -----------------------------------------------------------------
    def _make_sdk(self) -> openai.AsyncOpenAI:
        raise NotImplementedError

    def _label(self) -> str:
        raise NotImplementedError

    def _hints(self) -> dict[int, str]:
        raise NotImplementedError

    # plumbing -------------------------------------------------------------------
    async def _client(self) -> openai.AsyncOpenAI:
        # An SDK client's connection pool belongs to one event loop; make a new client
        # when called from another loop (e.g. a second ``asyncio.run``). Making one loads
        # certificates and modules (~0.1 s): in a thread, not on the event loop.
        loop = asyncio.get_running_loop()
        if self._sdk is None or self._sdk_loop is not loop:
            self._sdk = await asyncio.to_thread(self._make_sdk)
            self._sdk_loop = loop
        return self._sdk

    def _params(self, max_tokens: int | None, temperature: float | None) -> dict[str, Any]:
        params: dict[str, Any] = {}
        temp = temperature if temperature is not None else self.temperature
        cap = max_tokens if max_tokens is not None else self.max_tokens
        if temp is not None:
            params["temperature"] = temp
        if cap is not None:
            params[self.max_tokens_param] = cap
        return params

    def _map_error(self, exc: openai.OpenAIError) -> ProviderError:
        label = self._label()
        if isinstance(exc, openai.APITimeoutError):
            return transport_error(label, exc, timeout=True)
        if isinstance(exc, openai.APIConnectionError):
            return transport_error(label, exc, timeout=False)
        if isinstance(exc, openai.APIStatusError):
            headers = dict(exc.response.headers.items())
            return http_error(
                label,
                exc.status_code,
                _error_detail(exc),
                hints=self._hints(),
                retry_after_s=parse_retry_after(headers),
            )
        return ProviderError(f"{label}: {type(exc).__name__}: {exc}", retryable=False)

    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        """One chat completion.

        ``messages``: ``[{"role": "system"|"user"|"assistant", "content": str}, ...]``;
        ``max_tokens`` (output tokens) and ``temperature`` override the client defaults.
        Returns a Completion with provider-reported tokens (estimated at ≈ 4 characters a
        token only when the server reports no usage; ``raw["usage_estimated"]`` says so).
        Raises ProviderError (``retryable`` for 408/409/429/5xx, timeouts, connection).
        """
        started = time.perf_counter()
        try:
            # The messages go as extra_body (sent as they are, replacing ``messages``): the SDK's
            # typed transform walks every message of the history on each call, ≈ 0.4 ms a turn
            # of history — the root's whole per-turn cost by turn 100 (docs/benchmarks.md).
            resp = await (await self._client()).chat.completions.create(
                model=self.model,
                messages=[],
                extra_body={"messages": messages},
                **self._params(max_tokens, temperature),
            )
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc
        latency = time.perf_counter() - started
        if not resp.choices:
            raise ProviderError(f"{self._label()}: response has no choices", retryable=True)
        choice = resp.choices[0]
        text = choice.message.content or choice.message.refusal or ""
        usage = resp.usage
        if usage is not None:
            input_tokens, output_tokens = usage.prompt_tokens, usage.completion_tokens
        else:
            input_tokens = estimate_tokens("".join(m.get("content", "") for m in messages))
            output_tokens = estimate_tokens(text)
        raw: dict[str, Any] = {
            "id": resp.id,
            "finish_reason": choice.finish_reason,
            "response_model": resp.model,
            "usage_estimated": usage is None,
        }
        if usage is not None:
            raw["usage"] = usage.model_dump(exclude_none=True)
        return Completion(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            provider=self.provider,
            model=self.model,
            latency_s=latency,
            raw=raw,
        )

    async def aclose(self) -> None:
        """Close the SDK's HTTP connection pool (when it belongs to the running loop)."""
        sdk, self._sdk = self._sdk, None
        if sdk is not None:
            try:
                same_loop = asyncio.get_running_loop() is self._sdk_loop
            except RuntimeError:
                same_loop = False
            if same_loop:
                await sdk.close()
        self._sdk_loop = None


class OpenAIClient(_OpenAICompatible):
    """``openai:MODEL``: OpenAI or any OpenAI-compatible chat-completions server.

    ``api_key`` defaults to ``OPENAI_API_KEY``; ``base_url`` to ``OPENAI_BASE_URL``, then
    ``https://api.openai.com/v1``. ``timeout_s``: seconds per request. ``temperature`` and
    ``max_tokens`` (output tokens) are defaults that ``complete`` may override; None
    means "not sent". ``max_tokens_param`` picks the wire name of the cap (see module doc).

    Raises ConfigError when talking to api.openai.com without a key.
    """

    provider = "openai"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 120.0,
        temperature: float | None = None,
        max_tokens: int | None = None,
        max_tokens_param: MaxTokensParam | None = None,
    ) -> None:
        super().__init__()
        if not model:
            raise ConfigError("openai: empty model name; use openai:MODEL, e.g. openai:gpt-5")
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL).rstrip("/")
        official = "api.openai.com" in self.base_url
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if official:
                raise ConfigError(
                    f"openai:{model} needs an API key: export OPENAI_API_KEY=sk-..., or set "
                    "OPENAI_BASE_URL to an OpenAI-compatible server (vLLM, Ollama, ...)"
                )
            key = "EMPTY"  # compatible servers that need no key still get a header
        self._api_key = key
        self.timeout_s = timeout_s
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_tokens_param = max_tokens_param or ("max_completion_tokens" if official else "max_tokens")

    def _make_sdk(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=self._api_key,
            base_url=self.base_url,
            timeout=self.timeout_s,
            max_retries=0,
        )

    def _label(self) -> str:
        return f"openai:{self.model} at {self.base_url}"

    def _hints(self) -> dict[int, str]:
        return {
            400: "the server rejected the request; check the model's supported parameters",
            401: "check OPENAI_API_KEY (and OPENAI_BASE_URL when using a compatible server)",
            403: "this key has no access to the model or project; check OPENAI_API_KEY",
            404: (
                f"model {self.model!r} was not found at {self.base_url}; check the name in "
                "openai:MODEL / RLMX_MODEL and OPENAI_BASE_URL"
            ),
        }


class AzureOpenAIClient(_OpenAICompatible):
    """``azure:DEPLOYMENT``: an Azure OpenAI deployment (the model is the deployment name).

    ``endpoint`` defaults to ``AZURE_OPENAI_ENDPOINT`` (``https://RESOURCE.openai.azure.com``),
    ``api_key`` to ``AZURE_OPENAI_API_KEY``, ``api_version`` to ``OPENAI_API_VERSION``.
    Other arguments as for :class:`OpenAIClient` (the cap is sent as
    ``max_completion_tokens`` unless ``max_tokens_param`` says otherwise).

    Raises ConfigError naming the missing variable.
    """

    provider = "azure"

    def __init__(
        self,
        deployment: str,
        *,
        endpoint: str | None = None,
        api_key: str | None = None,
        api_version: str | None = None,
        timeout_s: float = 120.0,
        temperature: float | None = None,
        max_tokens: int | None = None,
        max_tokens_param: MaxTokensParam | None = None,
    ) -> None:
        super().__init__()
        if not deployment:
            raise ConfigError("azure: empty deployment name; use azure:DEPLOYMENT")
        self.model = deployment
        endpoint = endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
        api_key = api_key or os.environ.get("AZURE_OPENAI_API_KEY")
        api_version = api_version or os.environ.get("OPENAI_API_VERSION")
        missing = [
            name
            for name, value in (
                ("AZURE_OPENAI_ENDPOINT", endpoint),
                ("AZURE_OPENAI_API_KEY", api_key),
                ("OPENAI_API_VERSION", api_version),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"azure:{deployment} needs {', '.join(missing)}: export them "
                "(endpoint https://RESOURCE.openai.azure.com, API version e.g. 2024-10-21)"
            )
        assert endpoint and api_key and api_version
        self.endpoint = endpoint.rstrip("/")
        self._api_key = api_key
        self.api_version = api_version
        self.timeout_s = timeout_s
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_tokens_param = max_tokens_param or "max_completion_tokens"

    def _make_sdk(self) -> openai.AsyncOpenAI:
        return openai.AsyncAzureOpenAI(
            azure_endpoint=self.endpoint,
            azure_deployment=self.model,
            api_key=self._api_key,
            api_version=self.api_version,
            timeout=self.timeout_s,
            max_retries=0,
        )

    def _label(self) -> str:
        return f"azure:{self.model} at {self.endpoint}"

    def _hints(self) -> dict[int, str]:
        return {
            400: "the deployment rejected the request; check OPENAI_API_VERSION and parameters",
            401: "check AZURE_OPENAI_API_KEY (it must belong to AZURE_OPENAI_ENDPOINT)",
            403: "this key has no access to the deployment; check AZURE_OPENAI_API_KEY",
            404: (
                f"deployment {self.model!r} was not found at {self.endpoint}; check the name "
                "in azure:DEPLOYMENT, AZURE_OPENAI_ENDPOINT and OPENAI_API_VERSION"
            ),
        }
