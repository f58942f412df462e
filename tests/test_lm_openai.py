"""The real ``openai`` SDK path against MockLLMServer on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from rlmx.dev import MockLLMServer
from rlmx.errors import ConfigError, ProviderError
from rlmx.lm import AzureOpenAIClient, OpenAIClient, RetryingLM

MSGS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello world"}]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "AZURE_OPENAI_ENDPOINT",
        "AZURE_OPENAI_API_KEY",
        "OPENAI_API_VERSION",
        "OPENAI_CUSTOM_HEADERS",
    ):
        monkeypatch.delenv(name, raising=False)


def fast_retry(client: OpenAIClient | AzureOpenAIClient, attempts: int = 5) -> RetryingLM:
    return RetryingLM(client, max_attempts=attempts, initial_s=0.001, max_s=0.01)


def test_text_and_usage_from_the_server() -> None:
    with MockLLMServer(scripts={"root-model": ["the answer"]}) as srv:
        client = OpenAIClient("root-model", base_url=srv.base_url, api_key="k")
        c = asyncio.run(client.complete(MSGS))
        body = srv.requests[0].body
    assert c.text == "the answer"
    assert c.spec == "openai:root-model" and not c.cached
    assert c.input_tokens == (8 + 11 + 3) // 4 and c.output_tokens == 3
    assert c.raw["usage"]["total_tokens"] == c.input_tokens + c.output_tokens
    assert c.raw["finish_reason"] == "stop" and c.raw["usage_estimated"] is False
    assert c.latency_s > 0
    assert body["messages"] == MSGS
    assert "temperature" not in body and "max_tokens" not in body  # None: not sent


def test_temperature_and_max_tokens_are_sent_when_set() -> None:
    with MockLLMServer() as srv:
        client = OpenAIClient("m", base_url=srv.base_url, api_key="k", temperature=0.0)
        asyncio.run(client.complete(MSGS, max_tokens=7))
        explicit = OpenAIClient(
            "m",
            base_url=srv.base_url,
            api_key="k",
            max_tokens=9,
            max_tokens_param="max_completion_tokens",
        )
        asyncio.run(explicit.complete(MSGS, temperature=0.5))
        first, second = (r.body for r in srv.requests)
    assert first["temperature"] == 0.0 and first["max_tokens"] == 7
    assert second["temperature"] == 0.5 and second["max_completion_tokens"] == 9
    assert "max_tokens" not in second


def test_missing_usage_is_estimated() -> None:
    with MockLLMServer(include_usage=False, default="12345678") as srv:
        c = asyncio.run(OpenAIClient("m", base_url=srv.base_url, api_key="k").complete(MSGS))
    assert c.output_tokens == 2 and c.input_tokens >= 1
    assert c.raw["usage_estimated"] is True


def test_429_then_500_then_success_is_retried() -> None:
    with MockLLMServer(faults=[429, 500], default="ok") as srv:
        lm = fast_retry(OpenAIClient("m", base_url=srv.base_url, api_key="k"))
        c = asyncio.run(lm.complete(MSGS))
        statuses = [r.status for r in srv.requests]
    assert c.text == "ok"
    assert statuses == [429, 500, 200]
    assert lm.attempts == 3


def test_persistent_500_gives_up_after_max_attempts() -> None:
    with MockLLMServer(faults=[500] * 10) as srv:
        lm = fast_retry(OpenAIClient("m", base_url=srv.base_url, api_key="k"), attempts=3)
        with pytest.raises(ProviderError) as info:
            asyncio.run(lm.complete(MSGS))
        assert len(srv.requests) == 3
    assert info.value.status == 500 and info.value.retryable
    assert "gave up after 3 attempts" in str(info.value)


def test_401_is_not_retried_and_says_how_to_fix() -> None:
    with MockLLMServer(api_key="right") as srv:
        lm = fast_retry(OpenAIClient("m", base_url=srv.base_url, api_key="wrong"))
        with pytest.raises(ProviderError) as info:
            asyncio.run(lm.complete(MSGS))
        assert len(srv.requests) == 1
    err = info.value
    assert err.status == 401 and not err.retryable
    assert "OPENAI_API_KEY" in str(err) and "Incorrect API key" in str(err)


@pytest.mark.parametrize("status", [400, 404])
def test_other_client_errors_are_not_retried(status: int) -> None:
    with MockLLMServer(faults=[status]) as srv:
        lm = fast_retry(OpenAIClient("gpt-x", base_url=srv.base_url, api_key="k"))
        with pytest.raises(ProviderError) as info:
            asyncio.run(lm.complete(MSGS))
        assert len(srv.requests) == 1
    assert info.value.status == status and not info.value.retryable
    if status == 404:
        assert "'gpt-x'" in str(info.value) and "OPENAI_BASE_URL" in str(info.value)


def test_timeout_is_retryable() -> None:
    with MockLLMServer(latency_ms=400) as srv:
        client = OpenAIClient("m", base_url=srv.base_url, api_key="k", timeout_s=0.05)
        with pytest.raises(ProviderError) as info:
            asyncio.run(client.complete(MSGS))
    assert info.value.retryable and info.value.status is None
    assert "timed out" in str(info.value)


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = OpenAIClient("m", base_url=f"http://127.0.0.1:{port}/v1", api_key="k")
    with pytest.raises(ProviderError) as info:
        asyncio.run(client.complete(MSGS))
    assert info.value.retryable and info.value.status is None


def test_env_vars_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    with MockLLMServer(api_key="env-key", default="via env") as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "env-key")
        client = OpenAIClient("m")
        assert client.base_url == srv.base_url
        assert client.max_tokens_param == "max_tokens"  # compatible server
        assert asyncio.run(client.complete(MSGS)).text == "via env"
        assert srv.requests[0].headers.get("authorization") == "Bearer env-key"


def test_official_endpoint_without_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIClient("gpt-5")
    client = OpenAIClient("gpt-5", api_key="sk-test")
    assert client.max_tokens_param == "max_completion_tokens"  # reasoning models need it


def test_compatible_server_without_key_works() -> None:
    with MockLLMServer(default="no key needed") as srv:
        client = OpenAIClient("llama", base_url=srv.base_url)
        assert asyncio.run(client.complete(MSGS)).text == "no key needed"


def test_client_survives_several_event_loops() -> None:
    with MockLLMServer() as srv:
        client = OpenAIClient("m", base_url=srv.base_url, api_key="k")
        for _ in range(2):
            assert asyncio.run(client.complete(MSGS)).text == "hello world"

        async def closing() -> None:
            await client.complete(MSGS)
            await client.aclose()

        asyncio.run(closing())
        assert len(srv.requests) == 3


def test_azure_client_uses_the_deployment_path(monkeypatch: pytest.MonkeyPatch) -> None:
    with MockLLMServer(scripts={"my-deploy": ["azure says hi"]}, api_key="az-key") as srv:
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", srv.azure_endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-key")
        monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")
        client = AzureOpenAIClient("my-deploy", max_tokens=5)
        c = asyncio.run(client.complete(MSGS))
        req = srv.requests[0]
    assert c.text == "azure says hi" and c.spec == "azure:my-deploy"
    assert req.path == "/openai/deployments/my-deploy/chat/completions"
    assert req.model == "my-deploy"
    assert req.headers.get("api-key") == "az-key"
    assert req.body["max_completion_tokens"] == 5


def test_azure_retries_and_missing_settings() -> None:
    with MockLLMServer(faults=[429]) as srv:
        client = AzureOpenAIClient("d", endpoint=srv.azure_endpoint, api_key="k", api_version="2024-10-21")
        assert asyncio.run(fast_retry(client).complete(MSGS)).text == "hello world"
        assert [r.status for r in srv.requests] == [429, 200]
    with pytest.raises(ConfigError) as info:
        AzureOpenAIClient("d", api_key="k")
    assert "AZURE_OPENAI_ENDPOINT" in str(info.value) and "OPENAI_API_VERSION" in str(info.value)
    assert "AZURE_OPENAI_API_KEY" not in str(info.value)


def test_full_stack_cache_and_concurrency_against_the_server() -> None:
    from rlmx.lm import CachedLM, Completion, wrap_client

    class Meta:
        def __init__(self) -> None:
            self.data: dict[str, dict[str, object]] = {}

        def cache_get(self, key: str) -> dict[str, object] | None:
            return self.data.get(key)

        def cache_put(self, key: str, value: dict[str, object]) -> None:
            self.data[key] = value

    import threading

    together = threading.Barrier(2, timeout=30)  # a reply goes out only while 2 requests are in flight

    def reply(model: str, messages: list[dict[str, Any]]) -> str:
        together.wait()
        return f"echo: {messages[-1]['content']}"

    with MockLLMServer(scripts=reply, faults=[429]) as srv:
        client = OpenAIClient("m", base_url=srv.base_url, api_key="k")

        async def run() -> list[Completion]:
            meta: Any = Meta()
            lm = wrap_client(client, semaphore=asyncio.Semaphore(2), meta_store=meta, initial_s=0.001)
            assert isinstance(lm, CachedLM)
            prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(6)]
            first = await asyncio.gather(*(lm.complete(p) for p in prompts))
            again = await asyncio.gather(*(lm.complete(p) for p in prompts))
            await lm.aclose()
            return [*first, *again]

        results = asyncio.run(run())
        assert len(srv.requests) == 7  # 6 prompts + one 429 retried; repeats are cache hits
        assert srv.peak_in_flight == 2  # the barrier needs 2 at once; the semaphore allows no more
    assert [r.cached for r in results] == [False] * 6 + [True] * 6
