"""LM clients (the ``LMClient.complete`` seam), wrappers, prices and model resolution.

Providers: :class:`OpenAIClient` (``openai:MODEL``, any OpenAI-compatible server),
:class:`AzureOpenAIClient` (``azure:DEPLOYMENT``), :class:`AnthropicClient`
(``anthropic:MODEL``, optional extra), :class:`ScriptedLM` (``scripted:PATH``) and
:class:`BaselineLM` (``baseline``). Wrappers: :class:`RetryingLM`,
:class:`ConcurrencyLimitedLM`, :class:`CachedLM`. Specs → clients: :func:`make_client`,
:func:`resolve_models`. Cost: :class:`PriceTable`.
"""

from __future__ import annotations

from rlmx.lm.anthropic_client import AnthropicClient
from rlmx.lm.base import Completion, LMClient, Message, estimate_tokens
from rlmx.lm.baseline import BaselineLM
from rlmx.lm.openai_client import AzureOpenAIClient, OpenAIClient
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
