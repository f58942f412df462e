"""ScriptedLM: replies from lists, callables and files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from rlmx.errors import ConfigError, ProviderError
from rlmx.lm import Message, ScriptedLM, estimate_tokens

MSGS: list[Message] = [{"role": "user", "content": "what is up?"}]


def ask(lm: ScriptedLM, msgs: list[Message] = MSGS) -> str:
    return asyncio.run(lm.complete(msgs)).text


def test_list_in_order_then_exhausted() -> None:
    lm = ScriptedLM(["one", "two"])
    c = asyncio.run(lm.complete(MSGS))
    assert c.text == "one" and c.spec == "scripted:scripted" and not c.cached
    assert c.input_tokens == estimate_tokens("what is up?") and c.output_tokens == 1
    assert lm.remaining == 1
    assert ask(lm) == "two"
    with pytest.raises(ProviderError, match="exhausted after 2") as info:
        ask(lm)
    assert not info.value.retryable
    assert lm.calls == [MSGS, MSGS, MSGS]


def test_sync_and_async_callables() -> None:
    assert ask(ScriptedLM(lambda msgs: msgs[-1]["content"].upper())) == "WHAT IS UP?"

    async def reply(msgs: list[Message]) -> str:
        await asyncio.sleep(0)
        return f"{len(msgs)} messages"

    assert ask(ScriptedLM(reply, model="fn")) == "1 messages"
    with pytest.raises(ProviderError, match="not str"):
        ask(ScriptedLM(lambda msgs: 42))  # type: ignore[arg-type, return-value]


def test_json_list_file(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps(["a", "b"]), encoding="utf-8")
    lm = ScriptedLM(f)
    assert [ask(lm), ask(lm)] == ["a", "b"]
    assert ask(ScriptedLM(str(f))) == "a"


def test_jsonl_file(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    f.write_text('"first\\nline"\n\n"second"\n', encoding="utf-8")
    lm = ScriptedLM(f)
    assert [ask(lm), ask(lm)] == ["first\nline", "second"]


def test_root_and_sub_object_file(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"root": ["R"], "sub": ["S1", "S2"]}), encoding="utf-8")
    assert ask(ScriptedLM(f)) == "R"
    sub = ScriptedLM(f, role="sub")
    assert [ask(sub), ask(sub)] == ["S1", "S2"]
    with pytest.raises(ProviderError, match="sub"):
        ask(sub)
    with pytest.raises(ConfigError, match="'child'"):
        ScriptedLM(f, role="child")


@pytest.mark.parametrize("content", ["{not json", '{"root": "x"}', "[1, 2]", '"a"\n{bad'])
def test_malformed_files(tmp_path: Path, content: str) -> None:
    f = tmp_path / "bad.json"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match="scripted:"):
        ScriptedLM(f)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        ScriptedLM(tmp_path / "absent.json")


def test_non_string_list_is_rejected() -> None:
    with pytest.raises(ConfigError):
        ScriptedLM(["ok", 3])  # type: ignore[list-item]
