"""``rlm_query_batched(prompts, contexts=None)`` (docs/repl.md): child RLMs in parallel under
the tree's budget; a failing child gives its error text and the others complete. Through the
real loop: real REPL processes, the real ``openai`` SDK against ``rlmx.dev.MockLLMServer``."""

from __future__ import annotations

import re
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


def _question(messages: list[dict]) -> str:
    return str(messages[1]["content"])


def test_children_in_parallel_and_a_failing_one_gives_its_error(small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    # the three children's first root calls must all be in flight together (a barrier of 3):
    # sequential children would break it; child-x's model answers 400
    gate = threading.Barrier(3, timeout=20)

    def root(model: str, messages: list[dict]) -> str:
        q = _question(messages)
        for name in ("child-a", "child-b", "child-x"):
            if name in q:
                gate.wait()
                if name == "child-x":
                    raise KeyError("this child's model refuses")  # the mock answers 400
                return repl(f"FINAL('{name}:' + str(len(context)))")
        assert "rlm_query_batched(prompts, contexts=None)" in messages[0]["content"]
        return repl(
            "outs = rlm_query_batched(['child-a', 'child-b', 'child-x'], ['0123456789', context[0], 'x'])\n"
            "FINAL(' | '.join(outs))"
        )

    with MockLLMServer(scripts={"root": root}) as srv:
        _env(monkeypatch, srv)
        rlm = RLM(model="openai:root", sub_model="openai:root")
        ans = rlm.ask(small_corpus, "q?")
    assert ans.status is Status.COMPLETED, ans.error
    a, b, bad = ans.text.split(" | ")
    assert a == "child-a:10"
    assert b.startswith("child-b:") and int(b.split(":")[1]) > 0
    assert bad.startswith("Error: ") and "ended FAILED" in bad and "refuses" in bad
    assert ans.usage.sub_calls == 3
    trace = load_trace(rlm.store.meta, ans.execution_id)
    assert sorted(s["id"] for s in trace["subcalls"]) == ["t1.1", "t1.2", "t1.3"]
    assert {s["kind"] for s in trace["subcalls"]} == {"rlm_query"}


def test_budget_holds_for_batched_children(small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    # five children, each asking one sub-LM call, under max_sub_calls=4: the children are
    # reserved at submission (the fifth is refused), a spent budget stops the whole tree, and
    # the server never sees more sub-calls (children + their sub-LM calls) than the budget
    def script(model: str, messages: list[dict]) -> str:
        if model == "sub":
            return "sub reply"
        kid = re.search(r"kid\d", _question(messages))
        if kid:
            return repl(f"FINAL('{kid.group()}:' + llm_query('{kid.group()} asks'))")
        return repl("outs = rlm_query_batched([f'kid{i}' for i in range(5)])\nprint(outs)")

    with MockLLMServer(scripts=script) as srv:
        _env(monkeypatch, srv)
        rlm = RLM(model="openai:root", sub_model="openai:sub", budgets={"max_sub_calls": 4})
        ans = rlm.ask(small_corpus, "q?")
        reqs = [r for r in srv.requests if r.status == 200]
    kids = {m.group() for r in reqs if r.model == "root" and (m := re.search(r"kid\d", _question(r.messages)))}
    sub_lm = [r for r in reqs if r.model == "sub"]
    assert ans.status is Status.BUDGET_EXCEEDED
    assert "sub-call budget of 4" in (ans.error or "")
    assert len(kids) + len(sub_lm) <= 4 and ans.usage.sub_calls <= 4
    trace = load_trace(rlm.store.meta, ans.execution_id)
    assert len(trace["subcalls"]) <= 4


def test_at_max_depth_children_are_sub_lm_calls(small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    def script(model: str, messages: list[dict]) -> str:
        if model == "sub":
            return "sub says " + messages[-1]["content"]
        return repl("FINAL(' / '.join(rlm_query_batched(['one', 'two'])))")

    with MockLLMServer(scripts=script) as srv:
        _env(monkeypatch, srv)
        ans = RLM(model="openai:root", sub_model="openai:sub", budgets={"max_depth": 0}).ask(small_corpus, "q?")
    assert ans.status is Status.COMPLETED, ans.error
    assert ans.text == "sub says one / sub says two" and ans.usage.max_depth_reached == 0


def test_parallel_children_are_bounded_per_depth(small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    # RLMX_MAX_PARALLEL_CHILDREN=3: six children asked at once; no child's root call is
    # answered before three are in flight together, and never more than three child
    # executions are live at once (started, not finished: the engine's own events)
    monkeypatch.setenv("RLMX_MAX_PARALLEL_CHILDREN", "3")
    lock, three = threading.Lock(), threading.Event()
    calls = {"now": 0}
    live = {"now": 0, "peak": 0}

    def on_event(kind: str, data: dict) -> None:
        if data.get("depth") == 1 and kind in ("execution_started", "execution_finished"):
            with lock:
                live["now"] += 1 if kind == "execution_started" else -1
                live["peak"] = max(live["peak"], live["now"])

    def root(model: str, messages: list[dict]) -> str:
        kid = re.search(r"kid\d", _question(messages))
        if not kid:
            return repl("FINAL(','.join(rlm_query_batched([f'kid{i}' for i in range(6)])))")
        with lock:
            calls["now"] += 1
            if calls["now"] >= 3:
                three.set()
        assert three.wait(20), "three children were never in flight together"
        return repl(f"FINAL('{kid.group()}')")

    with MockLLMServer(scripts={"root": root}) as srv:
        _env(monkeypatch, srv)
        ans = RLM(model="openai:root", sub_model="openai:root", on_event=on_event).ask(small_corpus, "q?")
    assert ans.status is Status.COMPLETED, ans.error
    assert ans.text == ",".join(f"kid{i}" for i in range(6))
    assert live["peak"] == 3 and live["now"] == 0
