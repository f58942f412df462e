"""Retry, concurrency-limit and cache wrappers around LM clients (no network)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rlmx.errors import ProviderError
from rlmx.lm import (
    CachedLM,
    Completion,
    ConcurrencyLimitedLM,
    LMClient,
    Message,
    RetryingLM,
    WrapperLM,
    cache_key,
    wrap_client,
)
from rlmx.lm._errors import http_error
from rlmx.store import open_store

MSGS: list[Message] = [{"role": "user", "content": "hi"}]


class FakeLM(LMClient):
    """Counts calls; errors raised before succeeding; ``gate``: a condition each call waits
    for (polled on the event loop, with a deadline) before it answers."""

    provider = "fake"
    model = "m1"

    def __init__(self, errors: list[Exception] | None = None, gate: Callable[[], bool] | None = None) -> None:
        self.gate = gate
        self.errors = list(errors or [])
        self.calls = 0
        self.in_flight = 0
        self.peak = 0
        self.closed = False

    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        self.calls += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.gate is not None:
                await until(self.gate, "the gate of FakeLM")
            if self.errors:
                raise self.errors.pop(0)
            return Completion(
                text=f"reply {self.calls}: {messages[-1]['content']}",
                input_tokens=11,
                output_tokens=7,
                provider=self.provider,
                model=self.model,
                latency_s=0.5,
                raw={"id": "x"},
            )
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        self.closed = True


async def until(cond: Callable[[], bool], what: str, deadline_s: float = 10.0) -> None:
    """Yield to the event loop until ``cond()`` holds (a deadline against hanging, not a timing bet)."""
    deadline = time.monotonic() + deadline_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0)


class MemoryMeta:
    """The two MetadataStore cache methods, in memory."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.gets = 0

    def cache_get(self, key: str) -> dict[str, Any] | None:
        self.gets += 1
        return self.data.get(key)

    def cache_put(self, key: str, value: dict[str, Any]) -> None:
        self.data[key] = value


class LoopMeta(MemoryMeta):
    """MemoryMeta read on the event loop (``cache_blocking = False``): a caller's lookup and
    its check for a call in flight happen in one step, so ``gets`` counts callers that
    have either found the leader or become it."""

    cache_blocking = False


class BrokenMeta:
    def cache_get(self, key: str) -> dict[str, Any] | None:
        raise RuntimeError("disk gone")

    def cache_put(self, key: str, value: dict[str, Any]) -> None:
        raise RuntimeError("disk gone")


# cache key ------------------------------------------------------------------------------
BASE: dict[str, Any] = {
    "provider": "openai",
    "model": "gpt-5",
    "temperature": None,
    "max_tokens": None,
    "messages": [{"role": "user", "content": "hello"}],
}


def test_cache_key_is_stable_and_prefixed() -> None:
    k1 = cache_key(**BASE)
    k2 = cache_key(**{**BASE, "messages": [{"content": "hello", "role": "user"}]})
    assert k1 == k2  # canonical JSON: key order does not matter
    assert k1.startswith("sha256:") and len(k1) == len("sha256:") + 64
    # pinned: a change here silently invalidates every user's cache
    assert k1 == "sha256:48de7ac5ebd0a73510e939ef300ee086bca40c8ad696df7fbca81e9845f63b0f"


@pytest.mark.parametrize(
    "change",
    [
        {"provider": "azure"},
        {"model": "gpt-5-mini"},
        {"temperature": 0.0},
        {"max_tokens": 100},
        {"messages": [{"role": "user", "content": "hello!"}]},
        {"messages": [{"role": "system", "content": "hello"}]},
    ],
)
def test_cache_key_changes_with_each_input(change: dict[str, Any]) -> None:
    assert cache_key(**{**BASE, **change}) != cache_key(**BASE)


def test_cache_key_distinguishes_zero_and_none_temperature() -> None:
    assert cache_key(**{**BASE, "temperature": 0}) != cache_key(**BASE)


# cache ----------------------------------------------------------------------------------
def test_cache_miss_stores_and_hit_skips_inner() -> None:
    inner, meta = FakeLM(), MemoryMeta()
    lm = CachedLM(inner, meta)  # type: ignore[arg-type]
    first = asyncio.run(lm.complete(MSGS))
    second = asyncio.run(lm.complete(MSGS))
    assert inner.calls == 1
    assert not first.cached and second.cached
    assert second.text == first.text
    assert (second.input_tokens, second.output_tokens) == (11, 7)  # as originally reported
    assert second.spec == "fake:m1"
    assert second.raw["cache_key"] == lm.key_for(MSGS, None, None)
    assert second.raw["original_latency_s"] == 0.5
    assert (lm.hits, lm.misses) == (1, 1)
    assert len(meta.data) == 1


def test_cache_key_uses_effective_parameters() -> None:
    inner, meta = FakeLM(), MemoryMeta()
    inner.temperature = 0.2
    lm = CachedLM(inner, meta)  # type: ignore[arg-type]
    asyncio.run(lm.complete(MSGS))
    assert asyncio.run(lm.complete(MSGS, temperature=0.2)).cached  # same effective value
    assert not asyncio.run(lm.complete(MSGS, temperature=0.7)).cached
    assert not asyncio.run(lm.complete(MSGS, max_tokens=5)).cached
    assert inner.calls == 3


def test_concurrent_identical_requests_are_coalesced() -> None:
    meta = LoopMeta()
    inner = FakeLM(gate=lambda: meta.gets == 5)  # the leader answers once all 5 are waiting
    lm = CachedLM(inner, meta)  # type: ignore[arg-type]

    async def run() -> list[Completion]:
        return await asyncio.gather(*(lm.complete(MSGS) for _ in range(5)))

    results = asyncio.run(run())
    assert inner.calls == 1
    assert sum(not r.cached for r in results) == 1
    assert {r.text for r in results} == {results[0].text}
    assert all(r.raw.get("coalesced") for r in results if r.cached)


def test_leader_failure_reaches_waiters_and_is_not_cached() -> None:
    meta = LoopMeta()
    inner = FakeLM(errors=[ProviderError("boom", status=400)], gate=lambda: meta.gets >= 3)
    lm = CachedLM(inner, meta)  # type: ignore[arg-type]

    async def run() -> list[Any]:
        return await asyncio.gather(*(lm.complete(MSGS) for _ in range(3)), return_exceptions=True)

    results = asyncio.run(run())
    assert all(isinstance(r, ProviderError) for r in results)
    assert inner.calls == 1 and meta.data == {}
    assert not asyncio.run(lm.complete(MSGS)).cached  # next call tries again


def test_broken_store_does_not_break_calls_but_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    lm = CachedLM(FakeLM(), BrokenMeta())  # type: ignore[arg-type]
    with caplog.at_level("WARNING", logger="rlmx.lm"):
        c = asyncio.run(lm.complete(MSGS))
    assert c.text.startswith("reply 1")  # the call went on
    assert lm.errors == 2  # the lookup and the store both failed
    assert c.raw["cache_error"] == (
        "LLM cache lookup failed: RuntimeError: disk gone; LLM cache store failed: RuntimeError: disk gone"
    )
    assert [r.getMessage().split(" (key")[0] for r in caplog.records] == [
        "LLM cache lookup failed: RuntimeError: disk gone",
        "LLM cache store failed: RuntimeError: disk gone",
    ]


def test_cache_failures_show_in_usage_and_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rlmx import RLM
    from rlmx.engine.trace import load_trace
    from rlmx.lm import ScriptedLM

    rlm = RLM(model=ScriptedLM(["```repl\nr = llm_query('q')\nFINAL(r)\n```"]), sub_model=ScriptedLM(["sub answer"]))
    rlm._store = open_store(tmp_path / "home")

    def broken(*_a: Any) -> Any:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(rlm.store.meta, "cache_get", broken)
    monkeypatch.setattr(rlm.store.meta, "cache_get_many", broken)  # what CachedLM calls, batched
    answer = rlm.ask(rlm.texts("some text"), "q?")
    assert answer.text == "sub answer"
    assert answer.usage.cache_errors == 2  # the root call's lookup and the sub-call's
    trace = load_trace(rlm.store.meta, answer.execution_id)
    assert "database is locked" in (trace["turns"][0]["cache_error"] or "")
    assert "database is locked" in (trace["subcalls"][0]["cache_error"] or "")


def test_cache_with_the_real_store(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    inner = FakeLM()
    lm = CachedLM(inner, store.meta)
    first = asyncio.run(lm.complete(MSGS))
    lm2 = CachedLM(FakeLM(), open_store(tmp_path).meta)
    again = asyncio.run(lm2.complete(MSGS))
    assert again.cached and again.text == first.text and again.output_tokens == 7


# concurrency ----------------------------------------------------------------------------
class GatedLM(LMClient):
    """Each call waits at ``gate``, an :class:`asyncio.Barrier` shared by every GatedLM of a
    test: it opens only when ``gate.parties`` calls are in flight together, so a limit that
    lets fewer through never gets past it (the test's deadline fails it), and ``track``
    records the most calls in flight at once, so a limit that lets more through shows."""

    provider = "fake"
    model = "gated"

    def __init__(self, gate: asyncio.Barrier, track: dict[str, int]) -> None:
        self.gate = gate
        self.track = track

    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        self.track["calls"] += 1
        self.track["in_flight"] += 1
        self.track["peak"] = max(self.track["peak"], self.track["in_flight"])
        try:
            await self.gate.wait()
        finally:
            self.track["in_flight"] -= 1
        return Completion(text="ok", input_tokens=1, output_tokens=1, provider=self.provider, model=self.model)


async def _gather_within(deadline_s: float, what: str, *calls: Any) -> None:
    try:
        await asyncio.wait_for(asyncio.gather(*calls), deadline_s)
    except TimeoutError:
        raise AssertionError(f"{what}: the calls never were in flight together (the limit let fewer through)") from None


def test_concurrency_limit_bounds_in_flight_calls() -> None:
    track = {"calls": 0, "in_flight": 0, "peak": 0}

    async def run() -> ConcurrencyLimitedLM:
        inner = GatedLM(asyncio.Barrier(3), track)
        lm = ConcurrencyLimitedLM(inner, asyncio.Semaphore(3))
        await _gather_within(30, "Semaphore(3)", *(lm.complete(MSGS) for _ in range(12)))
        return lm

    lm = asyncio.run(run())
    assert track["calls"] == 12
    assert track["peak"] == 3 and lm.peak_in_flight == 3 and lm.in_flight == 0


def test_shared_semaphore_bounds_several_clients() -> None:
    track = {"calls": 0, "in_flight": 0, "peak": 0}

    async def run() -> None:
        gate = asyncio.Barrier(2)
        a, b = GatedLM(gate, track), GatedLM(gate, track)
        sem = asyncio.Semaphore(2)
        la, lb = ConcurrencyLimitedLM(a, sem), ConcurrencyLimitedLM(b, sem)
        await _gather_within(30, "a shared Semaphore(2)", *(x.complete(MSGS) for x in (la, lb) * 5))

    asyncio.run(run())
    assert track["calls"] == 10 and track["peak"] == 2 and track["in_flight"] == 0


def test_default_semaphore_is_16() -> None:
    assert ConcurrencyLimitedLM(FakeLM()).semaphore._value == 16


# retries --------------------------------------------------------------------------------
def test_retries_retryable_errors_only() -> None:
    inner = FakeLM(errors=[ProviderError("503", status=503, retryable=True)] * 2)
    lm = RetryingLM(inner, initial_s=0.001, max_s=0.002)
    assert asyncio.run(lm.complete(MSGS)).text.startswith("reply 3")
    assert inner.calls == 3

    bad = ProviderError("bad request", status=400, retryable=False)
    inner = FakeLM(errors=[bad])
    with pytest.raises(ProviderError) as info:
        asyncio.run(RetryingLM(inner, initial_s=0.001).complete(MSGS))
    assert info.value is bad and inner.calls == 1

    inner = FakeLM(errors=[ValueError("not a provider error")])
    with pytest.raises(ValueError):
        asyncio.run(RetryingLM(inner, initial_s=0.001).complete(MSGS))
    assert inner.calls == 1


def test_gives_up_after_max_attempts_keeping_status() -> None:
    inner = FakeLM(errors=[ProviderError("429", status=429, retryable=True)] * 9)
    with pytest.raises(ProviderError) as info:
        asyncio.run(RetryingLM(inner, max_attempts=4, initial_s=0.001).complete(MSGS))
    assert inner.calls == 4
    assert info.value.status == 429 and "gave up after 4 attempts" in str(info.value)
    assert isinstance(info.value.__cause__, ProviderError)


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    lm = RetryingLM(FakeLM(), initial_s=1.0, max_s=5.0, jitter=False)
    assert [lm.backoff_s(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    jittered = RetryingLM(FakeLM(), initial_s=1.0, max_s=5.0, jitter=True)
    values = [jittered.backoff_s(3) for _ in range(200)]
    assert all(2.0 <= v <= 4.0 for v in values) and len(set(values)) > 1


def test_retry_after_hint_is_honoured() -> None:
    lm = RetryingLM(FakeLM(), initial_s=10.0, max_retry_after_s=30.0)
    assert lm.backoff_s(1, http_error("x", 429, "slow", retry_after_s=0.25)) == 0.25
    assert lm.backoff_s(1, http_error("x", 429, "slow", retry_after_s=999)) == 30.0
    assert lm.backoff_s(1, http_error("x", 503, "down")) >= 5.0  # no hint: backoff

    inner = FakeLM(errors=[http_error("x", 429, "slow", retry_after_s=0.0)])
    lm = RetryingLM(inner, initial_s=30.0)  # would take 15+ s without the hint
    assert asyncio.run(asyncio.wait_for(lm.complete(MSGS), 5)).text.startswith("reply 2")


# composition ----------------------------------------------------------------------------
def test_wrappers_delegate_identity_and_close() -> None:
    inner = FakeLM()
    inner.max_tokens = 99
    lm = wrap_client(inner, meta_store=MemoryMeta())  # type: ignore[arg-type]
    assert isinstance(lm, CachedLM)
    assert isinstance(lm.inner, RetryingLM)
    assert isinstance(lm.inner.inner, ConcurrencyLimitedLM)
    assert (lm.provider, lm.model, lm.spec, lm.max_tokens) == ("fake", "m1", "fake:m1", 99)
    assert lm.unwrap() is inner
    asyncio.run(lm.aclose())
    assert inner.closed
    assert isinstance(wrap_client(FakeLM()), RetryingLM)
    assert asyncio.run(WrapperLM(FakeLM()).complete(MSGS)).text.startswith("reply 1")
