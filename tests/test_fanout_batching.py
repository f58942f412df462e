"""Issue 10, fan-out: the store work of one fan-out is batched (ThreadBatcher, the cache's
and the trace's batch methods), and the lean HTTP transport of the OpenAI client maps what
a server answers."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from rlmx.aio_batch import ThreadBatcher
from rlmx.dev._http import BackgroundServer
from rlmx.errors import ProviderError
from rlmx.lm import CachedLM, Completion, LMClient, Message, OpenAIClient
from rlmx.lm._chat_http import proxy_for
from rlmx.store import open_store

MSGS: list[Message] = [{"role": "user", "content": "hi"}]


# ThreadBatcher ----------------------------------------------------------------------------
def test_jobs_submitted_together_share_one_thread_hop() -> None:
    batches: list[list[int]] = []
    threads: set[str] = set()

    def run(items: list[int]) -> list[int]:
        batches.append(items)
        threads.add(threading.current_thread().name)
        return [i * 10 for i in items]

    batcher: ThreadBatcher[int, int] = ThreadBatcher(run)

    async def go() -> list[int]:
        return await asyncio.gather(*(batcher.submit(i) for i in range(100)))

    assert asyncio.run(go()) == [i * 10 for i in range(100)]
    assert batches == [list(range(100))] and batcher.hops == 1
    assert threading.main_thread().name not in threads  # it ran off the event loop's thread


def test_max_batch_splits_in_order_and_a_failing_batch_fails_only_its_items() -> None:
    def run(items: list[int]) -> list[str]:
        if 3 in items:
            raise RuntimeError("disk gone")
        return [str(i) for i in items]

    batcher: ThreadBatcher[int, str] = ThreadBatcher(run, max_batch=2)

    async def go() -> list[Any]:
        return await asyncio.gather(*(batcher.submit(i) for i in range(6)), return_exceptions=True)

    out = asyncio.run(go())
    assert out[:2] == ["0", "1"] and out[4:] == ["4", "5"]
    assert all(isinstance(e, RuntimeError) and "disk gone" in str(e) for e in out[2:4])
    assert batcher.hops == 3


def test_a_wrong_number_of_results_is_an_error_not_a_hang() -> None:
    batcher: ThreadBatcher[int, int] = ThreadBatcher(lambda items: [1])

    async def go() -> list[Any]:
        return await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)

    assert all(isinstance(e, RuntimeError) for e in asyncio.run(go()))


def test_a_batcher_follows_the_running_loop() -> None:
    batcher: ThreadBatcher[int, int] = ThreadBatcher(lambda items: items)
    for _ in range(3):
        assert asyncio.run(batcher.submit(7)) == 7


# the cache and the trace of a fan-out -------------------------------------------------------
class EchoLM(LMClient):
    provider = "fake"
    model = "echo"

    async def complete(
        self, messages: list[Message], *, max_tokens: int | None = None, temperature: float | None = None
    ) -> Completion:
        return Completion(messages[-1]["content"], 1, 1, self.provider, self.model)


class CountingStore:
    """A blocking cache backend with batch methods; counts calls of each."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, int] = {"get": 0, "put": 0, "get_many": 0, "put_many": 0}

    def cache_get(self, key: str) -> dict[str, Any] | None:
        self.calls["get"] += 1
        return self.data.get(key)

    def cache_put(self, key: str, value: dict[str, Any]) -> None:
        self.calls["put"] += 1
        self.data[key] = value

    def cache_get_many(self, keys: list[str]) -> list[dict[str, Any] | None]:
        self.calls["get_many"] += 1
        return [self.data.get(k) for k in keys]

    def cache_put_many(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        self.calls["put_many"] += 1
        self.data.update(items)


def test_a_fan_out_of_cache_lookups_and_stores_is_a_few_batches() -> None:
    store = CountingStore()
    lm = CachedLM(EchoLM(), store)

    async def fan_out() -> list[Completion]:
        return await asyncio.gather(*(lm.complete([{"role": "user", "content": f"p{i}"}]) for i in range(200)))

    first = asyncio.run(fan_out())
    assert [c.text for c in first] == [f"p{i}" for i in range(200)] and not any(c.cached for c in first)
    assert store.calls["get"] == store.calls["put"] == 0  # only the batch methods were used
    assert store.calls["get_many"] <= 3 and store.calls["put_many"] <= 3  # not 200 each
    again = asyncio.run(fan_out())
    assert all(c.cached for c in again) and [c.text for c in again] == [c.text for c in first]


def test_sql_store_batch_methods_match_the_single_ones(tmp_path: Path) -> None:
    meta = open_store(tmp_path / "home").meta
    meta.cache_put_many([("k1", {"text": "a"}), ("k2", {"text": "b"})])
    meta.cache_put("k2", {"text": "b2"})
    assert meta.cache_get_many(["k2", "nope", "k1"]) == [{"text": "b2"}, None, {"text": "a"}]
    assert meta.cache_get_many([f"x{i}" for i in range(1200)]) == [None] * 1200  # > one IN list
    meta.add_subcalls([("exe_a", {"id": "t1.1"}), ("exe_b", {"id": "t1.1"}), ("exe_a", {"id": "t1.2"})])
    meta.add_subcall("exe_a", {"id": "t1.3"})
    assert [r["id"] for r in meta.get_subcalls("exe_a")] == ["t1.1", "t1.2", "t1.3"]
    assert [r["id"] for r in meta.get_subcalls("exe_b")] == ["t1.1"]


def test_a_fan_out_through_the_engine_writes_the_trace_in_few_transactions(tmp_path: Path) -> None:
    from rlmx import RLM
    from rlmx.engine.trace import _WRITERS, load_trace
    from rlmx.lm import ScriptedLM

    rlm = RLM(
        model=ScriptedLM(["```repl\nr = llm_query_batched([f'q{i}' for i in range(60)])\nFINAL(str(len(r)))\n```"]),
        sub_model=EchoLM(),
        home=tmp_path / "home",
    )
    answer = rlm.ask(rlm.texts("some text"), "q?")
    assert answer.text == "60"
    trace = load_trace(rlm.store.meta, answer.execution_id)
    assert sorted(s["prompt"] for s in trace["subcalls"]) == sorted(f"q{i}" for i in range(60))
    assert _WRITERS[rlm.store.meta].hops < 60


# the lean transport --------------------------------------------------------------------------
def test_a_wrong_base_url_is_a_clear_error_that_is_not_retried() -> None:
    from rlmx.dev.mock_llm import MockLLMServer

    with MockLLMServer(scripts=lambda model, messages: "fine") as srv:
        client = OpenAIClient("m", base_url=srv.url + "/nowhere", api_key="k")
        with pytest.raises(ProviderError) as info:
            asyncio.run(client.complete(MSGS))
    assert info.value.status == 404 and not info.value.retryable
    assert "no route POST /nowhere/chat/completions" in str(info.value)


def test_proxies_come_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    assert proxy_for("https://api.openai.com/v1/chat/completions") == "http://proxy.example:3128"
    assert proxy_for("https://internal.example/v1/chat/completions") is None
    monkeypatch.delenv("HTTPS_PROXY")
    assert proxy_for("https://api.openai.com/v1/chat/completions") is None


class _OddServer(BackgroundServer):
    """An OpenAI-compatible endpoint that answers every POST 200 with ``payload``."""

    host, port, latency_ms = "127.0.0.1", 0, 0.0

    def __init__(self, payload: Any) -> None:
        BackgroundServer.__init__(self)
        self.payload = payload

    def handle_get(self, path: str) -> Any:
        return 404, {}, {}

    def handle_post(self, path: str, raw: bytes, headers: dict[str, str]) -> Any:
        return 200, self.payload, {}


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ("just text", "not a JSON object"),
        ({"id": "x", "choices": []}, "no choices"),
        ({"choices": [{"message": {"content": 42}}]}, "message content is not text"),
    ],
)
def test_a_200_that_is_not_a_chat_completion_is_a_retryable_error(payload: Any, why: str) -> None:
    with _OddServer(payload) as srv:
        host, port = srv.address
        client = OpenAIClient("m", base_url=f"http://{host}:{port}/v1", api_key="k")
        with pytest.raises(ProviderError) as info:
            asyncio.run(client.complete(MSGS))
    assert info.value.retryable and why in str(info.value)
    assert "OpenAI-compatible /v1 endpoint" in str(info.value)  # says how to fix it


def test_usage_without_token_counts_is_estimated() -> None:
    reply = {"id": "x", "model": "m", "choices": [{"message": {"content": "four"}, "finish_reason": "stop"}]}
    with _OddServer({**reply, "usage": {"total_tokens": 9}}) as srv:
        host, port = srv.address
        c = asyncio.run(OpenAIClient("m", base_url=f"http://{host}:{port}/v1", api_key="k").complete(MSGS))
    assert c.text == "four" and c.raw["usage_estimated"] and c.output_tokens == 1
