"""LM clients (the ``LMClient.complete`` seam), wrappers, prices and model resolution.

Providers: :class:`OpenAIClient` (``openai:MODEL``, any OpenAI-compatible server),
:class:`AzureOpenAIClient` (``azure:DEPLOYMENT``), :class:`AnthropicClient`
(``anthropic:MODEL``, optional extra), :class:`ScriptedLM` (``scripted:PATH``) and
:class:`BaselineLM` (``baseline``). Wrappers: :class:`RetryingLM`,
:class:`ConcurrencyLimitedLM`, :class:`CachedLM` (it stores through a
:class:`rlmx.lm.cache.CacheBackend`, e.g. the metadata store). Specs → clients: :func:`make_client`,
:func:`resolve_models`. Cost: :class:`PriceTable`.

The two OpenAI clients are imported on first use (their HTTP library, ``aiohttp``, takes
0.13–0.16 s to import), so ``import rlmx.lm`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rlmx.lm.anthropic_client import AnthropicClient
from rlmx.lm.base import Completion, LMClient, Message, estimate_tokens
from rlmx.lm.baseline import BaselineLM
from rlmx.lm.pricing import Price, PriceTable
from rlmx.lm.registry import make_client, parse_spec, resolve_models
from rlmx.lm.scripted import ScriptedLM
from rlmx.lm.wrappers import (
    CachedLM,
    ConcurrencyLimitedLM,
    RetryingLM,
    WrapperLM,
    cache_key,
    wrap_client,
)

__all__ = [
    "AnthropicClient",
    "AzureOpenAIClient",
    "BaselineLM",
    "CachedLM",
    "Completion",
    "ConcurrencyLimitedLM",
    "LMClient",
    "Message",
    "OpenAIClient",
    "Price",
    "PriceTable",
    "RetryingLM",
    "ScriptedLM",
    "WrapperLM",
    "cache_key",
    "estimate_tokens",
    "make_client",
    "parse_spec",
    "resolve_models",
    "wrap_client",
]

_LAZY = {"AzureOpenAIClient": "rlmx.lm.openai_client", "OpenAIClient": "rlmx.lm.openai_client"}

if TYPE_CHECKING:
    from rlmx.lm.openai_client import AzureOpenAIClient, OpenAIClient


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rlmx.lm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
