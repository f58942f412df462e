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
from .types import Answer, Budgets, SpanRef, Status, Usage, span_checksum

if TYPE_CHECKING:
    from .api import RLM

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
    if name == "RLM":  # lazy: keeps `import rlmx` (and the REPL worker) light
        from .api import RLM

        return RLM
    raise AttributeError(name)
