"""AnthropicClient through the real ``anthropic`` SDK against MockAnthropicServer on 127.0.0.1.

The SDK is a dev dependency; it is pointed at the local server with ``base_url``, as the
OpenAI tests point the ``openai`` SDK at MockLLMServer (never the internet).
"""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest

from rlmx.dev.mock_anthropic import MockAnthropicServer
from rlmx.errors import ConfigError, ProviderError
from rlmx.lm import RetryingLM
from rlmx.lm.anthropic_client import AnthropicClient, to_anthropic_messages

MSGS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello world"}]


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


def fast_retry(client: AnthropicClient, attempts: int = 5) -> RetryingLM:
    return RetryingLM(client, max_attempts=attempts, initial_s=0.001, max_s=0.01)


def test_system_messages_become_the_system_parameter() -> None:
    system, turns = to_anthropic_messages(
        [
            {"role": "system", "content": "rule 1"},
            {"role": "user", "content": "q1"},
            {"role": "user", "content": "q2"},
            {"role": "system", "content": "rule 2"},
            {"role": "assistant", "content": "a"},
        ]
    )
    assert system == "rule 1\n\nrule 2"
    assert turns == [
        {"role": "user", "content": "q1\n\nq2"},
        {"role": "assistant", "content": "a"},
    ]
    system, turns = to_anthropic_messages([{"role": "assistant", "content": "a"}])
    assert system is None and turns[0]["role"] == "user" and turns[1]["content"] == "a"


def test_missing_package_is_a_config_error_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(ConfigError, match=r"rlmx\[anthropic\]"):
        AnthropicClient("claude-sonnet-4-5", api_key="k")


def test_missing_key() -> None:
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        AnthropicClient("claude-sonnet-4-5")


def test_text_usage_and_request_through_the_sdk() -> None:
    with MockAnthropicServer(
        scripts={"claude-x": ["the answer"]},
        api_key="sk-ant-test",
        thinking="hmm, let me see",
        cache_read_tokens=5,
        cache_creation_tokens=2,
    ) as srv:
        client = AnthropicClient("claude-x", base_url=srv.url, api_key="sk-ant-test", temperature=0.3)
        c = asyncio.run(client.complete(MSGS))
        req = srv.requests[0]
    assert c.text == "the answer"  # the thinking block is not part of the text
    assert c.spec == "anthropic:claude-x" and not c.cached
    # input_tokens: (8 + 11 chars) / 4 rounded up = 5, plus cache reads and writes
    assert (c.input_tokens, c.output_tokens) == (5 + 5 + 2, 3)
    assert c.raw["finish_reason"] == "end_turn" and c.raw["response_model"] == "claude-x"
    assert c.raw["id"].startswith("msg_mock")
    assert c.latency_s > 0
    assert req.path == "/v1/messages" and req.status == 200
    assert "sk-ant-test" in (req.headers.get("x-api-key"), req.headers.get("authorization", "").removeprefix("Bearer "))
    assert req.headers.get("anthropic-version")
    assert req.body["system"] == "be brief"
    assert req.body["messages"] == [{"role": "user", "content": "hello world"}]
    assert req.body["max_tokens"] == 8192 and req.body["temperature"] == 0.3


def test_max_tokens_is_sent_and_a_cut_reply_says_so() -> None:
    with MockAnthropicServer(default="x" * 100) as srv:
        client = AnthropicClient("claude-x", base_url=srv.url, api_key="k")
        c = asyncio.run(client.complete([{"role": "assistant", "content": "a"}], max_tokens=3))
        body = srv.requests[0].body
    assert body["max_tokens"] == 3 and "system" not in body and "temperature" not in body
    assert body["messages"][0]["role"] == "user"  # the API rejects an assistant-first conversation
    assert c.text == "x" * 12 and c.output_tokens == 3 and c.raw["finish_reason"] == "max_tokens"


def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with MockAnthropicServer(default="via env", api_key="env-key") as srv:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
        assert asyncio.run(AnthropicClient("claude-x").complete(MSGS)).text == "via env"
        assert len(srv.requests) == 1


@pytest.mark.parametrize("faults", [[429], [529], [500], [429, 529, 500]])
def test_429_529_and_5xx_are_retried(faults: list[int]) -> None:
    with MockAnthropicServer(faults=faults, default="ok") as srv:
        lm = fast_retry(AnthropicClient("claude-x", base_url=srv.url, api_key="k"))
        c = asyncio.run(lm.complete(MSGS))
        statuses = [r.status for r in srv.requests]
    assert c.text == "ok"
    assert statuses == [*faults, 200]  # the SDK's own retries are off: every retry is RetryingLM's
    assert lm.attempts == len(faults) + 1


def test_the_client_alone_does_not_retry_and_maps_529() -> None:
    with MockAnthropicServer(faults=[529], retry_after="3") as srv:
        client = AnthropicClient("claude-x", base_url=srv.url, api_key="k")
        with pytest.raises(ProviderError) as info:
            asyncio.run(client.complete(MSGS))
        assert len(srv.requests) == 1
    err = info.value
    assert err.status == 529 and err.retryable
    assert getattr(err, "retry_after_s", None) == 3.0
    assert "overloaded" in str(err).lower() and "anthropic:claude-x" in str(err)


def test_persistent_5xx_gives_up_after_max_attempts() -> None:
    with MockAnthropicServer(faults=[500] * 10) as srv:
        lm = fast_retry(AnthropicClient("claude-x", base_url=srv.url, api_key="k"), attempts=3)
        with pytest.raises(ProviderError) as info:
            asyncio.run(lm.complete(MSGS))
        assert len(srv.requests) == 3
    assert info.value.status == 500 and info.value.retryable
    assert "gave up after 3 attempts" in str(info.value)


def test_bad_key_is_not_retried_and_says_how_to_fix() -> None:
    with MockAnthropicServer(api_key="right") as srv:
        lm = fast_retry(AnthropicClient("claude-x", base_url=srv.url, api_key="wrong"))
        with pytest.raises(ProviderError) as info:
            asyncio.run(lm.complete(MSGS))
        assert len(srv.requests) == 1
    err = info.value
    assert err.status == 401 and not err.retryable
    assert "ANTHROPIC_API_KEY" in str(err) and "invalid x-api-key" in str(err)


@pytest.mark.parametrize(("status", "hint"), [(400, "bad request"), (403, "no access"), (404, "'claude-nope'")])
def test_other_client_errors_are_not_retried(status: int, hint: str) -> None:
    with MockAnthropicServer(faults=[status]) as srv:
        lm = fast_retry(AnthropicClient("claude-nope", base_url=srv.url, api_key="k"))
        with pytest.raises(ProviderError) as info:
            asyncio.run(lm.complete(MSGS))
        assert len(srv.requests) == 1
    assert info.value.status == status and not info.value.retryable
    assert hint in str(info.value)


def test_timeout_and_connection_refused_are_retryable_provider_errors() -> None:
    with MockAnthropicServer(latency_ms=1000) as srv:
        client = AnthropicClient("claude-x", base_url=srv.url, api_key="k", timeout_s=0.05)
        with pytest.raises(ProviderError) as info:
            asyncio.run(client.complete(MSGS))
    assert info.value.retryable and info.value.status is None
    assert "timed out" in str(info.value)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = AnthropicClient("claude-x", base_url=f"http://127.0.0.1:{port}", api_key="k")
    with pytest.raises(ProviderError) as info:
        asyncio.run(client.complete(MSGS))
    assert info.value.retryable and info.value.status is None


def test_client_survives_several_event_loops() -> None:
    with MockAnthropicServer() as srv:
        client = AnthropicClient("claude-x", base_url=srv.url, api_key="k")
        for _ in range(2):
            assert asyncio.run(client.complete(MSGS)).text == "hello world"

        async def closing() -> None:
            await client.complete(MSGS)
            await client.aclose()

        asyncio.run(closing())
        assert len(srv.requests) == 3
