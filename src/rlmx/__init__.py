"""rlmx — Recursive Language Models (Zhang, Kraska & Khattab, arXiv 2512.24601) as software.

Public API::

    from rlmx import RLM
    answer = RLM(model="openai:gpt-5").ask("./docs", "What changed in 2024?")
    answer.text, answer.citations, answer.status, answer.usage, answer.cost_usd
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .errors import (
    BudgetExceededError,
    CitationError,
    ConfigError,
    IngestError,
    NotFoundError,
    ProviderError,
    ReplError,
    RlmxError,
    SchemaError,
    StoreError,
)

if TYPE_CHECKING:
    from .api import RLM
    from .types import Answer, Budgets, SpanRef, Status, Usage, span_checksum

_LAZY_TYPES = {"Answer", "Budgets", "SpanRef", "Status", "Usage", "span_checksum"}

__all__ = [
    "RLM",
    "Answer",
    "BudgetExceededError",
    "Budgets",
    "CitationError",
    "ConfigError",
    "IngestError",
    "NotFoundError",
    "ProviderError",
    "ReplError",
    "RlmxError",
    "SchemaError",
    "SpanRef",
    "Status",
    "StoreError",
    "Usage",
    "__version__",
    "span_checksum",
]


def __getattr__(name: str) -> Any:
    # Lazy: keeps `import rlmx` (and so the REPL worker's start) free of pydantic and SDKs.
    if name == "RLM":
        from .api import RLM

        return RLM
    if name in _LAZY_TYPES:
        from . import types

        return getattr(types, name)
    raise AttributeError(f"module 'rlmx' has no attribute {name!r}")
