"""The full loop over the real `openai` SDK against a local OpenAI-compatible HTTP server
on 127.0.0.1: scripted root and sub replies, injected 429/500 faults, usage accounting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rlmx import RLM, Status
from rlmx.dev import MockLLMServer
from rlmx.engine.trace import load_trace

ROOT_TURN_1 = """Searching first.
```repl
hits = context.grep(r"Marshall\\s+Plan", flags=2)
docs = sorted({h.doc_name for h in hits})
notes = llm_query_batched([f"Quote the sentence about the Marshall Plan: {h.context(200)}" for h in hits[:3]])
print(docs)
print(notes)
```"""
ROOT_TURN_2 = """```repl
FINAL("Addresses mentioning the Marshall Plan: " + ", ".join(docs) + ". " + notes[0])
```"""


def _tokens(chars: int) -> int:
    return max(1, (chars + 3) // 4)


def _server(faults=None, latency_ms=0.0):
    replies: list[str] = []

    def script(model, messages):
        if model == "mock-root":
            reply = ROOT_TURN_1 if sum(m["role"] == "assistant" for m in messages) == 0 else ROOT_TURN_2
        else:
            prompt = messages[-1]["content"]
            reply = prompt[prompt.index(":") + 1 :].strip()[:120]
        replies.append(reply)
        return reply

    return MockLLMServer(scripts=script, faults=faults, latency_ms=latency_ms), replies


def test_loop_over_openai_sdk_with_faults_and_usage(state_union: Path, monkeypatch: pytest.MonkeyPatch):
    srv, replies = _server(faults=[429, 500])
    with srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
        rlm = RLM(model="openai:mock-root", sub_model="openai:mock-sub")
        ans = rlm.ask(state_union, "Which addresses mention the Marshall Plan?")
        reqs = srv.requests
    assert ans.status is Status.COMPLETED, ans.error
    assert "1951-Truman.txt, 1966-Johnson.txt, 1972-Nixon.txt" in ans.text
    assert [r.status for r in reqs[:3]] == [429, 500, 200]  # retried through the SDK path
    ok = [r for r in reqs if r.status == 200]
    assert len(ok) == 2 + 3 and ans.usage.root_calls == 2 and ans.usage.sub_calls == 3
    expected_in = sum(_tokens(sum(len(m["content"]) for m in r.messages)) for r in ok)
    expected_out = sum(_tokens(len(x)) for x in replies)
    assert (ans.usage.input_tokens, ans.usage.output_tokens) == (expected_in, expected_out)
    assert ans.cost_usd is None  # no price for openai:mock-root: unknown, not zero
    assert ans.citations and all("Marshall" in c.text or "marshall" in c.text.lower() for c in ans.citations)
    trace = load_trace(rlm.store.meta, ans.execution_id)
    assert {s["model"] for s in trace["subcalls"]} == {"openai:mock-sub"}
    assert (
        sum(s["input_tokens"] for s in trace["subcalls"]) + sum(t.get("input_tokens", 0) for t in trace["turns"])
        == expected_in
    )


def test_cli_uses_openai_base_url_for_root_and_sub(state_union: Path, tmp_path: Path):
    """Done-when: the same command, with only OPENAI_BASE_URL set, runs the loop with that
    server as root and sub LM (the server's listed model is used for both)."""

    def script(model, messages):
        if sum(m["role"] == "assistant" for m in messages) == 0 and "<question>" in messages[-1]["content"]:
            return ROOT_TURN_1
        if messages[0]["role"] == "system":
            return ROOT_TURN_2
        prompt = messages[-1]["content"]
        return prompt[prompt.index(":") + 1 :].strip()[:120]

    srv = MockLLMServer(scripts={"local-model": script})
    with srv:
        env = {**os.environ, "OPENAI_BASE_URL": srv.base_url}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "rlmx.cli",
                "ask",
                str(state_union),
                "Which addresses mention the Marshall Plan?",
                "--json",
                "-q",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        models = {r.model for r in srv.requests}
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "COMPLETED" and models == {"local-model"}
    assert "1951-Truman.txt, 1966-Johnson.txt, 1972-Nixon.txt" in out["answer"]
    verify = subprocess.run(
        [sys.executable, "-m", "rlmx.cli", "verify", "-"],
        input=proc.stdout,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stderr


def test_batched_sub_calls_fan_out_with_bounded_concurrency(small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    # Each sub-call waits at a barrier of 8 in the server: it opens only when 8 sub-calls are
    # in flight together (a fan-out narrower than 8 never gets past it and breaks it at the
    # deadline), and the server's peak_in_flight shows a fan-out wider than max_concurrency.
    gate = threading.Barrier(8, timeout=60)
    broken: list[str] = []

    def sub(model: str, messages: list[dict]) -> str:
        try:
            gate.wait()
        except threading.BrokenBarrierError:
            broken.append(messages[-1]["content"])
            raise
        return "reply to " + messages[-1]["content"]

    code = "outs = llm_query_batched([f'p{i}' for i in range(40)])\nFINAL(str(len(set(outs))))"
    with MockLLMServer(scripts={"root": [f"```repl\n{code}\n```"], "sub": sub}) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
        ans = RLM(model="openai:root", sub_model="openai:sub", max_concurrency=8).ask(small_corpus, "q?")
        peak = srv.peak_in_flight
    assert not broken, "the 40 sub-calls never were 8 in flight together"
    assert ans.status is Status.COMPLETED and ans.text == "40" and ans.usage.sub_calls == 40
    assert peak == 8


def test_provider_failure_after_retries_ends_as_failed(small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    with MockLLMServer(faults=[500] * 10) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
        rlm = RLM(model="openai:root", sub_model="openai:sub")
        rlm.settings = rlm.settings.model_copy(update={"max_retries": 1})
        ans = rlm.ask(small_corpus, "q?")
        statuses = [r.status for r in srv.requests]
    assert ans.status is Status.FAILED and "ProviderError" in (ans.error or "")
    assert statuses == [500, 500]  # one try + one retry
    rec = rlm.store.meta.get_execution(ans.execution_id)
    assert rec.status == "FAILED" and rec.finished_at is not None
