"""The LM seam: one small abstract method per model (``LMClient.complete``).

Caching, budgets, retries, concurrency limits and tracing are wrappers around an
``LMClient`` (:mod:`rlmx.lm.wrappers`), never flags inside it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Completion", "LMClient", "Message", "estimate_tokens"]

Message = dict[str, str]
"""A chat message: ``{"role": "system"|"user"|"assistant", "content": str}``."""


def estimate_tokens(text: str) -> int:
    """Token estimate before a call: ≈ 4 characters a token (DESIGN.md library table)."""
    return max(1, (len(text) + 3) // 4)


@dataclass
class Completion:
    """One LM response. Tokens are provider-reported (estimated only when none are reported);
    ``latency_s`` is wall seconds; ``cached`` marks an LLM-cache hit (cost 0)."""

    text: str
    input_tokens: int
    output_tokens: int
    provider: str
    model: str
    cached: bool = False
    latency_s: float = 0.0
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        return f"{self.provider}:{self.model}"


class LMClient(ABC):
    """A chat model. Subclasses set ``provider`` and ``model`` and implement ``complete``.

    ``complete`` raises :class:`~rlmx.errors.ProviderError` (``retryable`` True for 429,
    5xx and timeouts) and never returns partial results.
    """

    provider: str = ""
    model: str = ""
    temperature: float | None = None
    max_tokens: int | None = None

    @property
    def spec(self) -> str:
        """``"provider:model"`` as given to ``--model``."""
        return f"{self.provider}:{self.model}"

    @abstractmethod
    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release network resources (optional)."""
