"""AnthropicClient: message mapping and SDK handling, with a stand-in ``anthropic`` module."""

from __future__ import annotations

import asyncio
import sys
import types
from typing import Any

import pytest

from rlmx.errors import ConfigError, ProviderError
from rlmx.lm.anthropic_client import AnthropicClient, to_anthropic_messages


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


class _Headers(dict[str, str]):
    pass


def fake_anthropic(calls: list[dict[str, Any]], fail_status: int | None = None) -> Any:
    mod = types.ModuleType("anthropic")

    class AnthropicError(Exception):
        pass

    class APIConnectionError(AnthropicError):
        pass

    class APITimeoutError(APIConnectionError):
        pass

    class APIStatusError(AnthropicError):
        def __init__(self, status: int) -> None:
            super().__init__(f"status {status}")
            self.status_code = status
            self.api_message = "overloaded" if status == 529 else "bad key"
            self.response = types.SimpleNamespace(headers=_Headers({"retry-after": "3"}))

    class _Messages:
        async def create(self, **params: Any) -> Any:
            calls.append(params)
            if fail_status is not None:
                raise APIStatusError(fail_status)
            return types.SimpleNamespace(
                id="msg_1",
                model=params["model"],
                stop_reason="end_turn",
                content=[
                    types.SimpleNamespace(type="thinking", thinking="hmm"),
                    types.SimpleNamespace(type="text", text="hello"),
                ],
                usage=types.SimpleNamespace(
                    input_tokens=10,
                    output_tokens=4,
                    cache_read_input_tokens=5,
                    cache_creation_input_tokens=None,
                ),
            )

    class AsyncAnthropic:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs
            self.messages = _Messages()

        async def close(self) -> None:
            pass

    for obj in (
        AnthropicError,
        APIConnectionError,
        APITimeoutError,
        APIStatusError,
        AsyncAnthropic,
    ):
        setattr(mod, obj.__name__, obj)
    return mod


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


def test_missing_package_is_a_config_error_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(ConfigError, match=r"rlmx\[anthropic\]"):
        AnthropicClient("claude-sonnet-4-5", api_key="k")


def test_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", fake_anthropic([]))
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        AnthropicClient("claude-sonnet-4-5")


def test_request_and_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setitem(sys.modules, "anthropic", fake_anthropic(calls))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    client = AnthropicClient("claude-sonnet-4-5", temperature=0.3)
    c = asyncio.run(client.complete([{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}]))
    assert c.text == "hello" and c.spec == "anthropic:claude-sonnet-4-5"
    assert (c.input_tokens, c.output_tokens) == (15, 4)  # cache reads count as input
    params = calls[0]
    assert params["system"] == "sys" and params["messages"] == [{"role": "user", "content": "q"}]
    assert params["max_tokens"] == 8192 and params["extra_body"] == {"temperature": 0.3}
    asyncio.run(client.complete([{"role": "user", "content": "q"}], max_tokens=10))
    assert calls[1]["max_tokens"] == 10 and "system" not in calls[1]


@pytest.mark.parametrize(("status", "retryable"), [(529, True), (401, False)])
def test_errors_are_mapped(monkeypatch: pytest.MonkeyPatch, status: int, retryable: bool) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", fake_anthropic([], fail_status=status))
    client = AnthropicClient("claude-haiku-4-5", api_key="k")
    with pytest.raises(ProviderError) as info:
        asyncio.run(client.complete([{"role": "user", "content": "q"}]))
    assert info.value.status == status and info.value.retryable is retryable
    if status == 401:
        assert "ANTHROPIC_API_KEY" in str(info.value)
    else:
        assert getattr(info.value, "retry_after_s", None) == 3.0
