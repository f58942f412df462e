"""OpenAI and Azure OpenAI chat models over HTTP (the chat-completions wire format).

* :class:`OpenAIClient` (``openai:MODEL``) talks to api.openai.com or to any
  OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenRouter...) through
  ``OPENAI_BASE_URL``. The key comes from ``OPENAI_API_KEY``; a compatible server that
  needs no key gets the placeholder ``"EMPTY"``. ``OPENAI_ORG_ID`` and
  ``OPENAI_PROJECT_ID``, when set, go as the ``OpenAI-Organization``/``OpenAI-Project``
  headers, as the official SDK sends them.
* :class:`AzureOpenAIClient` (``azure:DEPLOYMENT``) uses ``AZURE_OPENAI_ENDPOINT``,
  ``AZURE_OPENAI_API_KEY`` and ``OPENAI_API_VERSION``; the model is the deployment name
  (``POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=V`` with an
  ``api-key`` header).

Requests go through :class:`rlmx.lm._chat_http.JsonPoster` (``aiohttp``, one keep-alive
pool per event loop), not the ``openai`` SDK: the SDK costs ≈ 16× the client CPU per request
and ≈ 3.5× the import time (:mod:`rlmx.lm._chat_http`; docs/benchmarks.md, "fan-out"); the
JSON on the wire is the same.
There are no transport-level retries: retrying is the job of
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

import os
import time
from typing import Any, Literal
from urllib.parse import quote

from rlmx.errors import ConfigError, ProviderError
from rlmx.lm._chat_http import JsonPoster, JsonResponse, error_detail
from rlmx.lm._errors import http_error, parse_retry_after
from rlmx.lm.base import Completion, LMClient, Message, estimate_tokens

__all__ = ["AzureOpenAIClient", "OpenAIClient"]

MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
_USER_AGENT = "rlmx (chat-completions; aiohttp)"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _OpenAICompatible(LMClient):
    """Shared request/response/error handling for the OpenAI and Azure clients."""

    max_tokens_param: MaxTokensParam = "max_tokens"
    timeout_s: float = 120.0

    def __init__(self) -> None:
        self._poster: JsonPoster | None = None
        self._target: tuple[str, dict[str, str]] | None = None

    # subclasses -----------------------------------------------------------------
    def _url(self) -> str:
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    def _body_model(self) -> dict[str, Any]:
        """The ``model`` field of the request body (Azure names the deployment in the URL)."""
        return {"model": self.model}

    def _label(self) -> str:
        raise NotImplementedError

    def _hints(self) -> dict[int, str]:
        raise NotImplementedError

    # plumbing -------------------------------------------------------------------
    @property
    def poster(self) -> JsonPoster:
        if self._poster is None:
            self._poster = JsonPoster(self._label(), self.timeout_s)
        return self._poster

    def _params(self, max_tokens: int | None, temperature: float | None) -> dict[str, Any]:
        params: dict[str, Any] = {}
        temp = temperature if temperature is not None else self.temperature
        cap = max_tokens if max_tokens is not None else self.max_tokens
        if temp is not None:
            params["temperature"] = temp
        if cap is not None:
            params[self.max_tokens_param] = cap
        return params

    def _status_error(self, resp: JsonResponse) -> ProviderError:
        return http_error(
            self._label(),
            resp.status,
            error_detail(resp),
            hints=self._hints(),
            retry_after_s=parse_retry_after(resp.headers),
        )

    def _malformed(self, why: str) -> ProviderError:
        return ProviderError(
            f"{self._label()}: the response is not a chat completion ({why}); check that the "
            "base URL is an OpenAI-compatible /v1 endpoint",
            retryable=True,
        )

    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        """One chat completion (``POST .../chat/completions``).

        ``messages``: ``[{"role": "system"|"user"|"assistant", "content": str}, ...]``;
        ``max_tokens`` (output tokens) and ``temperature`` override the client defaults.
        Returns a Completion with provider-reported tokens (estimated at ≈ 4 characters a
        token only when the server reports no usage; ``raw["usage_estimated"]`` says so).
        Raises ProviderError (``retryable`` for 408/409/429/5xx, timeouts, connection
        failures and malformed responses).
        """
        started = time.perf_counter()
        if self._target is None:  # the URL and headers (keys, org, project) are read once
            self._target = (self._url(), self._headers())
        url, headers = self._target
        body = {**self._body_model(), "messages": messages, **self._params(max_tokens, temperature)}
        resp = await self.poster.request("POST", url, headers=headers, payload=body)
        if resp.status >= 400:
            raise self._status_error(resp)
        latency = time.perf_counter() - started
        data = resp.body
        if not isinstance(data, dict):
            raise self._malformed("not a JSON object")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self._malformed("no choices")
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            message = {}
        text = message.get("content") or message.get("refusal") or ""
        if not isinstance(text, str):
            raise self._malformed("message content is not text")
        usage = data.get("usage")
        if not isinstance(usage, dict):
            usage = None
        prompt_tokens = _int(usage.get("prompt_tokens")) if usage else None
        completion_tokens = _int(usage.get("completion_tokens")) if usage else None
        estimated = prompt_tokens is None or completion_tokens is None
        input_tokens = (
            prompt_tokens
            if prompt_tokens is not None
            else estimate_tokens("".join(m.get("content", "") for m in messages))
        )
        output_tokens = completion_tokens if completion_tokens is not None else estimate_tokens(text)
        raw: dict[str, Any] = {
            "id": data.get("id"),
            "finish_reason": choice.get("finish_reason"),
            "response_model": data.get("model"),
            "usage_estimated": estimated,
        }
        if usage is not None:
            raw["usage"] = {k: v for k, v in usage.items() if v is not None}
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
        """Close the HTTP connection pool (when it belongs to the running loop)."""
        poster, self._poster = self._poster, None
        if poster is not None:
            await poster.aclose()


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

    def _url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._api_key}", "User-Agent": _USER_AGENT}
        for env, name in (("OPENAI_ORG_ID", "OpenAI-Organization"), ("OPENAI_PROJECT_ID", "OpenAI-Project")):
            if os.environ.get(env):
                headers[name] = os.environ[env]
        return headers

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

    def _url(self) -> str:
        deployment = quote(self.model, safe="")
        version = quote(self.api_version, safe="")
        return f"{self.endpoint}/openai/deployments/{deployment}/chat/completions?api-version={version}"

    def _headers(self) -> dict[str, str]:
        return {"api-key": self._api_key, "User-Agent": _USER_AGENT}

    def _body_model(self) -> dict[str, Any]:
        return {}

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
