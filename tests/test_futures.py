"""Futures for sub-calls (docs/repl.md): ``llm_query_async`` / ``rlm_query_async`` handles,
``handle.result(timeout)``, ``wait(handles)``; budgets reserved at submission. Through the
real loop: real REPL processes, the real ``openai`` SDK against ``rlmx.dev.MockLLMServer``."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rlmx import RLM, Status
from rlmx.dev import MockLLMServer
from rlmx.engine.trace import load_trace


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def _env(monkeypatch: pytest.MonkeyPatch, srv: MockLLMServer) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")


def _subs(srv: MockLLMServer) -> list[str]:
    return [r.messages[-1]["content"] for r in srv.requests if r.model == "sub" and r.status == 200]


def test_handles_run_while_the_code_goes_on(small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    # the two sub-calls can only answer once both are in flight together: a blocking
    # llm_query would break the barrier; the code keeps scanning between them
    gate = threading.Barrier(2, timeout=20)

    def sub(model: str, messages: list[dict]) -> str:
        gate.wait()
        return "reply " + messages[-1]["content"]

    code = (
        "h1 = llm_query_async('first')\n"
        "try:\n    h1.result(timeout=0.2); early = 'answered'\nexcept TimeoutError:\n    early = 'running'\n"
        "n = len(context.grep('Marshall'))\n"
        "h2 = llm_query_async('second')\n"
        "both = wait([h1, h2])\n"
        "FINAL(f'{early}|{n > 0}|{h1.id},{h2.id}|' + ';'.join(both) + f'|{h1.done()}')"
    )
    with MockLLMServer(scripts={"root": [repl(code)], "sub": sub}) as srv:
        _env(monkeypatch, srv)
        ans = RLM(model="openai:root", sub_model="openai:sub").ask(small_corpus, "q?")
        subs = _subs(srv)
    assert ans.status is Status.COMPLETED, ans.error
    assert ans.text == "running|True|t1.1,t1.2|reply first;reply second|True"
    assert sorted(subs) == ["first", "second"] and ans.usage.sub_calls == 2
    trace = load_trace(RLM(model="openai:root").store.meta, ans.execution_id)
    assert sorted(s["id"] for s in trace["subcalls"]) == ["t1.1", "t1.2"]


def test_budget_is_reserved_at_submission(small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    # two sub-calls are held in flight; the third submission is refused by the budget although
    # none has finished: the server never sees more than max_sub_calls sub-LM requests
    release = threading.Event()
    seen = threading.Semaphore(0)

    def sub(model: str, messages: list[dict]) -> str:
        seen.release()
        release.wait(20)
        return "ok"

    code = (
        "hs = [llm_query_async(f'p{i}') for i in range(3)]\n"
        "print([h.id for h in hs])\n"
        "print(hs[2].result())\n"
        "print('not reached')"
    )
    root = [repl(code), repl("FINAL('unreachable')")]

    def root_script(model: str, messages: list[dict]) -> str:
        return root[sum(m["role"] == "assistant" for m in messages)]

    def release_after_two() -> None:
        seen.acquire(timeout=20)
        seen.acquire(timeout=20)
        release.set()

    helper = threading.Thread(target=release_after_two, daemon=True)
    helper.start()
    with MockLLMServer(scripts={"root": root_script, "sub": sub}) as srv:
        _env(monkeypatch, srv)
        ans = RLM(model="openai:root", sub_model="openai:sub", budgets={"max_sub_calls": 2}).ask(small_corpus, "q?")
        subs = _subs(srv)
    release.set()
    seen.release()  # the helper may still wait for a second sub-call that was refused: end it,
    seen.release()  # so that no thread of this test outlives it (forked parsing needs none)
    helper.join(30)
    assert not helper.is_alive()
    assert ans.status is Status.BUDGET_EXCEEDED
    assert len(subs) <= 2 and ans.usage.sub_calls <= 2
    assert "sub-call budget of 2" in (ans.error or "")


def test_handle_errors_and_unfinished_handles(small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    # a prompt that is not text fails at submission (TypeError, nothing sent); a handle left
    # running when its step ends is cancelled (its reservation given back) and its result()
    # raises ToolError (a RuntimeError) in the next step
    hold = threading.Event()

    def sub(model: str, messages: list[dict]) -> str:
        if messages[-1]["content"] == "slow":
            hold.wait(20)
        return "fine"

    turns = [
        repl(
            "doc = llm_query_async(context[0])\n"  # a document view is a prompt; an int is not
            "try:\n    llm_query_async(42)\nexcept TypeError as e:\n    kind = 'TypeError'\n"
            "ok = doc.result()\nslow = llm_query_async('slow')\nprint(kind, ok)"
        ),
        repl(
            "try:\n    slow.result(timeout=10)\nexcept RuntimeError as e:\n    err = str(e)\n"
            "FINAL(kind + '|' + ok + '|' + err)"
        ),
    ]

    def root_script(model: str, messages: list[dict]) -> str:
        return turns[sum(m["role"] == "assistant" for m in messages)]

    with MockLLMServer(scripts={"root": root_script, "sub": sub}) as srv:
        _env(monkeypatch, srv)
        ans = RLM(model="openai:root", sub_model="openai:sub").ask(small_corpus, "q?")
        hold.set()
    assert ans.status is Status.COMPLETED, ans.error
    kind, ok, err = ans.text.split("|")
    assert (kind, ok) == ("TypeError", "fine")
    assert "the step ended before this request was resolved" in err
    assert ans.usage.sub_calls == 1  # the cancelled one was released


def test_rlm_query_async_children_run_in_parallel(small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    # two children whose first root calls must be in flight together
    gate = threading.Barrier(2, timeout=20)

    def root(model: str, messages: list[dict]) -> str:
        system = messages[0]["content"]
        question = messages[1]["content"]
        if "child-a" in question or "child-b" in question:
            if sum(m["role"] == "assistant" for m in messages) == 0:
                gate.wait()
            name = "A" if "child-a" in question else "B"
            return repl(f"FINAL('{name}:' + str(len(context)))")
        assert "rlm_query_async" in system
        return repl(
            "ha = rlm_query_async('child-a', context='0123456789')\n"
            "hb = rlm_query_async('child-b', context='abc')\n"
            "FINAL(' '.join(wait([ha, hb])))"
        )

    with MockLLMServer(scripts={"root": root}) as srv:
        _env(monkeypatch, srv)
        ans = RLM(model="openai:root", sub_model="openai:root").ask(small_corpus, "q?")
    assert ans.status is Status.COMPLETED, ans.error
    assert ans.text == "A:10 B:3"
    assert ans.usage.sub_calls == 2 and ans.usage.max_depth_reached == 1
