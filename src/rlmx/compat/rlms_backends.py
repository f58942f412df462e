"""The official ``rlms`` library's ``backend``/``backend_kwargs`` as rlmx LM clients, and the
root LM wrapper that adds the compat prompt (the ``answer`` dict, ``custom_system_prompt``).

Backends (``backend_kwargs`` keys in brackets; ``model_name`` is required for all):

* ``openai`` [``api_key``, ``base_url``]: :class:`~rlmx.lm.openai_client.OpenAIClient`
  (``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` when absent, as the official client does).
* ``vllm`` [``base_url`` required, ``api_key``], ``openrouter``, ``vercel`` [``api_key``,
  ``base_url`` defaulting to the router's]: the same client.
* ``azure_openai`` [``azure_endpoint``, ``api_key``, ``api_version``, ``azure_deployment``
  (default ``model_name``)]: :class:`~rlmx.lm.openai_client.AzureOpenAIClient`.
* ``anthropic`` [``api_key``, ``max_tokens``]: :class:`~rlmx.lm.anthropic_client.AnthropicClient`
  (the ``anthropic`` extra).

Every backend also takes ``timeout`` (seconds per request) and ``sampling_args`` with
``temperature`` / ``max_tokens`` (output tokens). Any other key, and the ``portkey`` and
``gemini`` backends, raise :class:`~rlmx.errors.ConfigError` naming what rlmx accepts.
"""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from typing import Any

from ..errors import ConfigError
from ..lm.base import Completion, LMClient, Message
from ..lm.wrappers import WrapperLM

__all__ = ["BACKENDS", "CompatPromptLM", "compat_prompt", "make_backend_client"]

BACKENDS = ("openai", "vllm", "openrouter", "vercel", "azure_openai", "anthropic")
_ROUTERS = {
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "vercel": ("https://ai-gateway.vercel.sh/v1", "AI_GATEWAY_API_KEY"),
}
_COMMON = {"model_name", "timeout", "sampling_args"}
_KEYS = {
    "openai": {"api_key", "base_url"},
    "vllm": {"api_key", "base_url"},
    "openrouter": {"api_key", "base_url"},
    "vercel": {"api_key", "base_url"},
    "azure_openai": {"api_key", "azure_endpoint", "api_version", "azure_deployment"},
    "anthropic": {"api_key", "max_tokens"},
}


@cache
def compat_prompt() -> str:
    """The paragraph the compat layer appends to the root system prompt (the ``answer``
    dict), from ``compat/prompts/rlms_answer.md`` without its opening comment."""
    text = resources.files(__package__).joinpath("prompts", "rlms_answer.md").read_text(encoding="utf-8")
    if text.startswith("<!--"):
        text = text[text.index("-->") + 3 :].lstrip("\n")
    return text.rstrip("\n")


def make_backend_client(backend: str, backend_kwargs: dict[str, Any] | None, *, timeout_s: float) -> LMClient:
    """An rlmx LM client for an official ``backend`` name and its ``backend_kwargs`` (see the
    module doc). ``timeout_s``: seconds per request unless ``backend_kwargs["timeout"]`` says.
    Raises ConfigError for an unknown backend or key, or a missing ``model_name``."""
    if backend not in BACKENDS:
        raise ConfigError(
            f"backend {backend!r} is not supported by rlmx.compat.rlms; use one of {', '.join(BACKENDS)} "
            "(any OpenAI-compatible server works as 'openai' with backend_kwargs['base_url'])"
        )
    kw = dict(backend_kwargs or {})
    unknown = sorted(set(kw) - _COMMON - _KEYS[backend])
    if unknown:
        allowed = ", ".join(sorted(_COMMON | _KEYS[backend]))
        raise ConfigError(f"backend_kwargs for {backend!r}: unsupported key(s) {unknown}; rlmx accepts {allowed}")
    model = kw.get("model_name")
    if not model or not isinstance(model, str):
        raise ConfigError(f"backend_kwargs for {backend!r} needs 'model_name', e.g. {{'model_name': 'gpt-5-nano'}}")
    sampling = dict(kw.get("sampling_args") or {})
    bad = sorted(set(sampling) - {"temperature", "max_tokens"})
    if bad:
        raise ConfigError(f"sampling_args: unsupported key(s) {bad}; rlmx accepts temperature, max_tokens")
    timeout = float(kw.get("timeout") or timeout_s)
    temperature, max_tokens = sampling.get("temperature"), sampling.get("max_tokens")
    if backend == "azure_openai":
        from ..lm.openai_client import AzureOpenAIClient

        return AzureOpenAIClient(
            kw.get("azure_deployment") or model,
            endpoint=kw.get("azure_endpoint"),
            api_key=kw.get("api_key"),
            api_version=kw.get("api_version"),
            timeout_s=timeout,
            temperature=temperature,
            max_tokens=max_tokens,
        )
    if backend == "anthropic":
        from ..lm.anthropic_client import AnthropicClient

        return AnthropicClient(
            model,
            api_key=kw.get("api_key"),
            timeout_s=timeout,
            temperature=temperature,
            max_tokens=max_tokens or kw.get("max_tokens"),
        )
    from ..lm.openai_client import OpenAIClient

    base_url, api_key = kw.get("base_url"), kw.get("api_key")
    if backend == "vllm" and not base_url:
        raise ConfigError("backend 'vllm' needs backend_kwargs['base_url'], the vLLM server's address (…/v1)")
    if backend in _ROUTERS:
        default_url, key_var = _ROUTERS[backend]
        base_url = base_url or default_url
        api_key = api_key or os.environ.get(key_var)
    return OpenAIClient(
        model, api_key=api_key, base_url=base_url, timeout_s=timeout, temperature=temperature, max_tokens=max_tokens
    )


class CompatPromptLM(WrapperLM):
    """The root LM as the compat layer prompts it: the first message, when it is the system
    prompt, becomes ``custom_system_prompt`` (if given), then rlmx's system prompt (the
    context's description and the REPL helpers), then :func:`compat_prompt`. The same
    messages give the same prompt, so the LLM cache still hits."""

    def __init__(self, inner: LMClient, custom_system_prompt: str | None = None) -> None:
        super().__init__(inner)
        self.custom_system_prompt = custom_system_prompt

    def amend(self, messages: list[Message]) -> list[Message]:
        """``messages`` with the system prompt amended (a new list; the input is not changed)."""
        if not messages or messages[0].get("role") != "system":
            return messages
        parts = [self.custom_system_prompt or "", messages[0].get("content", ""), compat_prompt()]
        first = {**messages[0], "content": "\n\n".join(p for p in parts if p)}
        return [first, *messages[1:]]

    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        return await self.inner.complete(self.amend(messages), max_tokens=max_tokens, temperature=temperature)
