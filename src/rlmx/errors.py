"""The rlmx exception tree.

Every error rlmx raises on purpose descends from :class:`RlmxError`, and its message
says how to fix the problem (the classes after the dashes live in other modules)::

    RlmxError
    ├── ConfigError          bad settings (a malformed ``RLMX_`` variable, named), unknown
    │                        model spec, missing API key or price
    ├── IngestError          nothing usable could be ingested (single-file failures are
    │                        recorded on the Document instead, never raised)
    ├── StoreError           the metadata or blob store failed or is inconsistent
    │   └── NotFoundError    an id (document, corpus, execution) that does not exist
    ├── ProviderError        an LM provider failed after retries (HTTP status, timeout)
    ├── BudgetExceededError  a budget of the execution tree is spent
    ├── ExecutionCancelled   a client asked to cancel (checked at turn boundaries)
    ├── ReplError            the REPL process could not start or broke its protocol
    ├── SchemaError          SUBMIT fields do not match the output schema
    ├── CitationError        a citation is malformed or does not match stored text
    ├── RuntimeConflict      -- rlmx.engine.runtime: a runtime execution's state does not
    │                        fit the request (it is over, or a step is waiting)
    ├── ToolResultError      -- rlmx.engine.runtime (also a ValueError): a client's tool
    │                        result is malformed or names no waiting request
    └── ServiceError         -- rlmx.service.errors: answered with its HTTP ``status``
        ├── BadRequest 400 · Forbidden 403 · NotFound 404 · Conflict 409
        └── TooLarge 413 · TooMany 429 · Unavailable 503 (a server fault, detail logged)
"""

from __future__ import annotations

__all__ = [
    "BudgetExceededError",
    "CitationError",
    "ConfigError",
    "ExecutionCancelled",
    "IngestError",
    "NotFoundError",
    "ProviderError",
    "ReplError",
    "RlmxError",
    "SchemaError",
    "StoreError",
]


class RlmxError(Exception):
    """Root of every error rlmx raises on purpose."""


class ConfigError(RlmxError):
    """Settings are invalid or incomplete (model spec, API key, price table, paths)."""


class IngestError(RlmxError):
    """No document could be ingested from the given paths."""


class StoreError(RlmxError):
    """The metadata store or blob store failed."""


class NotFoundError(StoreError):
    """An id (document, corpus, execution) does not exist in the store."""


class ProviderError(RlmxError):
    """An LM provider call failed after all retries.

    Attributes: ``status`` (HTTP status code or None), ``retryable`` (bool).
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class BudgetExceededError(RlmxError):
    """A budget (turns, sub-calls, tokens, USD, seconds, depth) of the execution tree is spent.

    Attributes: ``budget`` (the name of the limit, e.g. ``"max_sub_calls"``).
    """

    def __init__(self, message: str, *, budget: str):
        super().__init__(message)
        self.budget = budget


class ExecutionCancelled(RlmxError):
    """A client asked to cancel the execution; it stops at the next turn boundary."""


class ReplError(RlmxError):
    """The REPL process failed to start, died, or broke the JSON protocol."""


class SchemaError(RlmxError):
    """``SUBMIT`` fields do not validate against the caller's output schema."""


class CitationError(RlmxError):
    """A citation is malformed, or its checksum does not match the stored canonical text."""
