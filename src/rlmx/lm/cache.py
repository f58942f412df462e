"""The LLM cache's storage seam: :class:`CacheBackend`, a two-method protocol.

:class:`~rlmx.lm.wrappers.CachedLM` needs nothing else from storage, so ``rlmx.lm`` does not
import the store; ``rlmx.store.MetadataStore`` satisfies the protocol structurally (its
``cache_get``/``cache_put``), and so does :class:`MemoryCache` (tests, one-off scripts).

Keys are :func:`rlmx.lm.wrappers.cache_key` strings (``"sha256:<hex>"``); they carry the
cache namespace (a tenant in the service), so one backend can hold many tenants' entries
without one ever reading another's.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["CacheBackend", "MemoryCache"]


@runtime_checkable
class CacheBackend(Protocol):
    """Stores LLM-cache entries: JSON-able dicts by key."""

    def cache_get(self, key: str) -> dict[str, Any] | None:
        """The entry stored under ``key``, or None."""
        ...

    def cache_put(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` under ``key`` (replacing any previous entry)."""
        ...


class MemoryCache:
    """A :class:`CacheBackend` in a dict (this process only)."""

    cache_blocking = False
    """Never blocks: :class:`~rlmx.lm.wrappers.CachedLM` calls it on the event loop."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    def cache_get(self, key: str) -> dict[str, Any] | None:
        """The entry under ``key``, or None."""
        return self.entries.get(key)

    def cache_put(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` under ``key``."""
        self.entries[key] = value
