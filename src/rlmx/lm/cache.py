"""The LLM cache's storage seam: :class:`CacheBackend`, a two-method protocol.

:class:`~rlmx.lm.wrappers.CachedLM` needs nothing else from storage, so ``rlmx.lm`` does not
import the store; ``rlmx.store.MetadataStore`` satisfies the protocol structurally (its
``cache_get``/``cache_put``), and so does :class:`MemoryCache` (tests, one-off scripts).

Keys are :func:`cache_key` strings (``"sha256:<hex>"``); they carry the
cache namespace (a tenant in the service), so one backend can hold many tenants' entries
without one ever reading another's.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol, runtime_checkable

from rlmx.lm.base import Message

__all__ = ["CacheBackend", "MemoryCache", "cache_key"]


@runtime_checkable
class CacheBackend(Protocol):
    """Stores LLM-cache entries: JSON-able dicts by key."""

    def cache_get(self, key: str) -> dict[str, Any] | None:
        """The entry stored under ``key``, or None."""
        ...

    def cache_put(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` under ``key`` (replacing any previous entry)."""
        ...

    # Optional (CachedLM uses them when present): ``cache_get_many(keys) -> [value | None]``
    # and ``cache_put_many([(key, value), ...])``, one read / one transaction for a batch.


def cache_key(
    provider: str,
    model: str,
    temperature: float | None,
    max_tokens: int | None,
    messages: list[Message],
    namespace: str = "",
) -> str:
    """The LLM-cache key: ``"sha256:" + hex`` over canonical JSON of the inputs.

    Canonical JSON: sorted keys, no whitespace, UTF-8 (``ensure_ascii=False``). Any change
    in provider, model, temperature, max_tokens (output tokens), messages or ``namespace``
    changes the key. ``namespace`` partitions the cache (the service uses
    ``"tenant:<tenant>"``, so a ``cached`` flag never tells one tenant what another asked);
    ``""`` (the local user's own cache) leaves it out of the JSON, so keys made before
    namespaces existed still hit.
    """
    payload: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "messages": [dict(m) for m in messages],
    }
    if namespace:
        payload["namespace"] = namespace
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


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
