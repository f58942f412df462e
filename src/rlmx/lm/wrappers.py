"""Cross-cutting LM features as wrappers around an :class:`~rlmx.lm.base.LMClient`.

Each wrapper is itself an LMClient with the inner client's ``provider``/``model``/``spec``,
so they compose. The recommended order (what :func:`wrap_client` builds)::

    CachedLM( RetryingLM( ConcurrencyLimitedLM( client ) ) )

* the cache is outermost: a hit takes no concurrency slot and no retry;
* retries sit outside the concurrency limit, so a call sleeping in backoff holds no slot;
* one ``asyncio.Semaphore`` is shared by every client of an execution tree (root, sub,
  children), so the whole tree has one bound (``RLMX_MAX_CONCURRENCY``, default 16).

The cache stores through a :class:`~rlmx.lm.cache.CacheBackend` (the metadata store is one):
this module does not import the store.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import replace
from typing import Any

import tenacity

from rlmx.aio_batch import ThreadBatcher
from rlmx.errors import ProviderError
from rlmx.lm._errors import retry_after_of
from rlmx.lm.base import Completion, LMClient, Message
from rlmx.lm.cache import CacheBackend, cache_key

__all__ = [
    "CachedLM",
    "ConcurrencyLimitedLM",
    "RetryingLM",
    "WrapperLM",
    "cache_key",
    "wrap_client",
]

log = logging.getLogger("rlmx.lm")

DEFAULT_CONCURRENCY = 16


class WrapperLM(LMClient):
    """An LMClient that delegates to ``inner``; copies its provider, model and defaults."""

    def __init__(self, inner: LMClient) -> None:
        self.inner = inner
        self.provider = inner.provider
        self.model = inner.model
        self.temperature = inner.temperature
        self.max_tokens = inner.max_tokens

    @property
    def spec(self) -> str:
        return self.inner.spec

    def unwrap(self) -> LMClient:
        """The innermost (provider) client."""
        client: LMClient = self
        while isinstance(client, WrapperLM):
            client = client.inner
        return client

    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        return await self.inner.complete(messages, max_tokens=max_tokens, temperature=temperature)

    async def aclose(self) -> None:
        await self.inner.aclose()


class RetryingLM(WrapperLM):
    """Retries ``ProviderError`` with ``retryable=True`` (429, 5xx, timeouts, connection).

    ``max_attempts``: total tries (1 = no retry). Backoff before retry ``n`` (1-based) is
    ``min(max_s, initial_s * 2**(n-1))`` seconds; with ``jitter`` a uniformly random value
    between half of that and all of it. A ``retry_after_s`` hint on the error (the server's
    ``Retry-After``) replaces the backoff, capped at ``max_retry_after_s`` seconds.

    After the last attempt the final ProviderError is raised again with
    ``"(gave up after N attempts)"`` appended (same ``status`` and ``retryable``);
    non-retryable errors propagate at once, unchanged.
    """

    def __init__(
        self,
        inner: LMClient,
        *,
        max_attempts: int = 5,
        initial_s: float = 0.5,
        max_s: float = 20.0,
        jitter: bool = True,
        max_retry_after_s: float = 60.0,
    ) -> None:
        super().__init__(inner)
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.initial_s = initial_s
        self.max_s = max_s
        self.jitter = jitter
        self.max_retry_after_s = max_retry_after_s
        self.attempts = 0  # calls made to the inner client, for tests and traces

    def backoff_s(self, attempt: int, exc: BaseException | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        hint = retry_after_of(exc) if exc is not None else None
        if hint is not None:
            return min(hint, self.max_retry_after_s)
        base = min(self.max_s, self.initial_s * (2 ** (attempt - 1)))
        return base / 2 + random.uniform(0, base / 2) if self.jitter else base

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return self.backoff_s(state.attempt_number, exc)

    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, ProviderError) and e.retryable),
            reraise=False,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    self.attempts += 1
                    return await self.inner.complete(messages, max_tokens=max_tokens, temperature=temperature)
        except tenacity.RetryError as exc:
            last = exc.last_attempt.exception()
            assert isinstance(last, ProviderError)
            n = exc.last_attempt.attempt_number
            raise ProviderError(
                f"{last} (gave up after {n} attempts)", status=last.status, retryable=last.retryable
            ) from last
        raise AssertionError("unreachable: tenacity returned without a result")  # pragma: no cover


class ConcurrencyLimitedLM(WrapperLM):
    """Bounds in-flight ``complete`` calls with a shared ``asyncio.Semaphore``.

    Pass the same semaphore to every client of an execution tree; when None, a private
    ``Semaphore(16)`` is used. ``in_flight`` / ``peak_in_flight`` count this wrapper's calls.
    """

    def __init__(self, inner: LMClient, semaphore: asyncio.Semaphore | None = None) -> None:
        super().__init__(inner)
        self.semaphore = semaphore if semaphore is not None else asyncio.Semaphore(DEFAULT_CONCURRENCY)
        self.in_flight = 0
        self.peak_in_flight = 0

    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        async with self.semaphore:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                return await self.inner.complete(messages, max_tokens=max_tokens, temperature=temperature)
            finally:
                self.in_flight -= 1


class CachedLM(WrapperLM):
    """An LLM cache in a :class:`~rlmx.lm.cache.CacheBackend` (``cache_get``/``cache_put``;
    the metadata store is one). ``CachedLM(inner, backend, namespace="")``.

    The key is :func:`cache_key` over the inner client's provider and model, the effective
    temperature and max_tokens (the call's, else the client's default), the messages and
    ``namespace`` (entries of other namespaces are never read: ``"tenant:<t>"`` in the
    service, ``""`` for the local user).
    A hit returns ``Completion(cached=True)`` with the tokens as originally reported (the
    engine charges cost 0 for cached completions), ``latency_s`` of the lookup and
    ``raw["cache_key"]``; the inner client is not called. A miss calls the inner client and
    stores ``{text, input_tokens, output_tokens, provider, model, latency_s, raw}``.

    Identical requests in flight at the same time in this wrapper are coalesced: one calls
    the inner client and the others wait for it and get its result marked ``cached=True``
    (if that call fails, they get the same error). Across processes two identical
    concurrent requests may both miss and both pay; the second store simply overwrites.
    Backend calls run in a worker thread, the lookups (and the stores) of the calls made at
    the same moment batched into one hop and one ``cache_get_many``/``cache_put_many`` when
    the backend has them, unless the backend says it never blocks. A failing backend
    is not fatal, and not silent either: the failure is logged (``rlmx.lm`` logger, warning),
    counted in :attr:`errors`, and noted on the completion (``raw["cache_error"]``), which the
    budget tracker counts in ``Usage.cache_errors`` and the engine writes into the trace.
    """

    def __init__(self, inner: LMClient, meta_store: CacheBackend, namespace: str = "") -> None:
        super().__init__(inner)
        self.store = meta_store
        self.namespace = namespace
        self._inflight: dict[str, asyncio.Future[Completion]] = {}
        self._lookups: ThreadBatcher[str, dict[str, Any] | str | None] = ThreadBatcher(self._lookup_batch)
        self._stores: ThreadBatcher[tuple[str, dict[str, Any]], str | None] = ThreadBatcher(self._store_batch)
        self.hits = 0
        self.misses = 0
        self.errors = 0
        """Cache lookups and stores that failed (each also logged)."""

    def key_for(self, messages: list[Message], max_tokens: int | None, temperature: float | None) -> str:
        """The cache key of a call (see :func:`cache_key`), in this wrapper's namespace."""
        return cache_key(
            self.provider,
            self.model,
            temperature if temperature is not None else self.temperature,
            max_tokens if max_tokens is not None else self.max_tokens,
            messages,
            self.namespace,
        )

    async def _io(self, batcher: ThreadBatcher[Any, Any], item: Any) -> Any:
        """One backend call: batched into one worker-thread hop with the other calls of this
        moment (:class:`~rlmx.aio_batch.ThreadBatcher`: a fan-out's lookups are one hop and
        one read) unless the backend says it never blocks (``cache_blocking = False``, e.g.
        :class:`~rlmx.lm.cache.MemoryCache`): then it is called on the event loop."""
        if getattr(self.store, "cache_blocking", True):
            return await batcher.submit(item)
        return batcher.run_batch([item])[0]

    def _failed(self, what: str, key: str, e: Exception, n: int = 1) -> str:
        """A cache failure of ``n`` calls: logged once, counted ``n`` times (:attr:`errors`),
        and returned as the note each completion carries (``raw["cache_error"]``: usage and
        the trace show it)."""
        self.errors += n
        note = f"LLM cache {what} failed: {type(e).__name__}: {e}"
        more = f" and {n - 1} more" if n > 1 else ""
        log.warning("%s (key %s…%s); the call goes on without the cache", note, key[:12], more)
        return note

    def _lookup_batch(self, keys: list[str]) -> list[dict[str, Any] | str | None]:
        """Entries of ``keys`` (in a worker thread): dicts, None for misses, or a failure note."""
        try:
            many = getattr(self.store, "cache_get_many", None)
            return list(many(keys)) if many is not None else [self.store.cache_get(k) for k in keys]
        except Exception as e:  # a broken cache must not break the call: it is reported instead
            return [self._failed("lookup", keys[0], e, len(keys))] * len(keys)

    def _store_batch(self, items: list[tuple[str, dict[str, Any]]]) -> list[str | None]:
        """Store ``(key, entry)`` pairs (in a worker thread): None each, or a failure note."""
        try:
            many = getattr(self.store, "cache_put_many", None)
            if many is not None:
                many(items)
            else:
                for key, value in items:
                    self.store.cache_put(key, value)
        except Exception as e:  # not fatal: the calls succeeded, only future hits are lost
            return [self._failed("store", items[0][0], e, len(items))] * len(items)
        return [None] * len(items)

    def _hit(self, key: str, value: dict[str, Any], started: float) -> Completion | None:
        try:
            raw = dict(value.get("raw") or {})
            raw.update(cache_key=key, original_latency_s=value.get("latency_s", 0.0))
            return Completion(
                text=str(value["text"]),
                input_tokens=int(value["input_tokens"]),
                output_tokens=int(value["output_tokens"]),
                provider=str(value.get("provider", self.provider)),
                model=str(value.get("model", self.model)),
                cached=True,
                latency_s=time.perf_counter() - started,
                raw=raw,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None  # an entry in an older or foreign shape: treat as a miss

    @staticmethod
    def _entry(c: Completion) -> dict[str, Any]:
        return {
            "text": c.text,
            "input_tokens": c.input_tokens,
            "output_tokens": c.output_tokens,
            "provider": c.provider,
            "model": c.model,
            "latency_s": c.latency_s,
            "raw": c.raw,
            "created_at": time.time(),
        }

    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        started = time.perf_counter()
        key = self.key_for(messages, max_tokens, temperature)
        found = await self._io(self._lookups, key)
        lookup_error = found if isinstance(found, str) else None
        hit = self._hit(key, found, started) if isinstance(found, dict) else None
        if hit is not None:
            self.hits += 1
            return hit
        leader = self._inflight.get(key)
        if leader is not None:
            try:
                shared = await asyncio.shield(leader)
            except asyncio.CancelledError:
                if not leader.cancelled():
                    raise  # we were cancelled ourselves
                # the leader was cancelled: make the call ourselves below
            else:
                self.hits += 1
                raw = {**shared.raw, "cache_key": key, "coalesced": True}
                return replace(shared, cached=True, latency_s=time.perf_counter() - started, raw=raw)
        self.misses += 1
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            try:
                result = await self.inner.complete(messages, max_tokens=max_tokens, temperature=temperature)
            except asyncio.CancelledError:
                future.cancel()
                raise
            except BaseException as exc:
                future.set_exception(exc)
                future.exception()  # mark retrieved: no "never retrieved" warning
                raise
            future.set_result(result)  # callers of the same key get it now, while it is stored
            store_error = await self._io(self._stores, (key, self._entry(result)))
            errors = [e for e in (lookup_error, store_error) if e]
            if errors:
                result = replace(result, raw={**result.raw, "cache_error": "; ".join(errors)})
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
        return result


def wrap_client(
    client: LMClient,
    *,
    semaphore: asyncio.Semaphore | None = None,
    meta_store: CacheBackend | None = None,
    max_attempts: int = 5,
    initial_s: float = 0.5,
    max_s: float = 20.0,
    cache_namespace: str = "",
) -> LMClient:
    """The standard stack: ``CachedLM(RetryingLM(ConcurrencyLimitedLM(client)))``.

    The cache layer (a :class:`~rlmx.lm.cache.CacheBackend`, in ``cache_namespace``) is
    left out when ``meta_store`` is None. ``max_attempts`` is ``Settings.max_retries + 1``.
    """
    wrapped: LMClient = RetryingLM(
        ConcurrencyLimitedLM(client, semaphore),
        max_attempts=max_attempts,
        initial_s=initial_s,
        max_s=max_s,
    )
    if meta_store is not None:
        wrapped = CachedLM(wrapped, meta_store, cache_namespace)
    return wrapped
