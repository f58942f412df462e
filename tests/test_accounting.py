"""Issue 9 item 9: ``usage.sub_calls`` counts the sub-calls that ran (a reservation that
never ran is given back), resume keeps the spend of the turn in flight and cancels the
whole subtree it abandoned. Real REPL processes; scripted LMs at the LM boundary."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from rlmx import RLM, Status
from rlmx.engine.resume import abandon_in_flight, stored_usage
from rlmx.engine.trace import load_trace
from rlmx.lm import ScriptedLM
from rlmx.lm.base import estimate_tokens
from rlmx.store.base import ExecutionRecord

BATCH = "r = llm_query_batched([f'q{i} ' + 'x' * 4000 for i in range(8)])\nprint(len(r))"


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def test_a_batch_cut_short_by_the_token_budget_counts_only_the_calls_that_ran(small_corpus: Path):
    # the token budget lets 5 of the batch's 8 calls start (each reserves its estimate
    # while in flight); the other 3 raise BudgetExceeded before reaching the LM
    dry = RLM(model=ScriptedLM([repl(BATCH), repl("FINAL('x')")]), sub_model=ScriptedLM(lambda m: "ok"), cache=False)
    first = dry.ask(small_corpus, "q?")
    turn1 = load_trace(dry.store.meta, first.execution_id)["turns"][0]
    root_tokens = int(turn1["input_tokens"]) + int(turn1["output_tokens"])
    per_call = estimate_tokens("q0 " + "x" * 4000) + 256
    budget = root_tokens + 5 * per_call + per_call // 2

    async def reply(messages: list[dict[str, str]]) -> str:
        await asyncio.sleep(0)  # a yield, not a wait: every call of the batch starts first
        return "ok"

    sub = ScriptedLM(reply)
    rlm = RLM(
        model=ScriptedLM([repl(BATCH), repl("FINAL('x')")]),
        sub_model=sub,
        budgets={"max_total_tokens": budget},
        cache=False,
    )
    ans = rlm.ask(small_corpus, "q?")
    assert ans.status is Status.BUDGET_EXCEEDED
    assert len(sub.calls) == 5  # 5 ran
    assert ans.usage.sub_calls == 5  # ... and 5 are counted (was 8: every reservation)
    trace = load_trace(rlm.store.meta, ans.execution_id)
    assert len(trace["subcalls"]) == 5
    assert trace["execution"]["usage"]["sub_calls"] == 5


EID = "exe_accounting_resume000001"


async def _stopped_in_turn_2(rlm: RLM, corpus: Any) -> None:
    """Turn 1 commits; turn 2 pays for one sub-call and is stopped during its second."""
    started = asyncio.Event()

    async def sub(messages: list[dict[str, str]]) -> str:
        if messages[-1]["content"] == "hang":
            started.set()
            await asyncio.Event().wait()  # the worker stops while this call is in flight
        return "PAID ANSWER " * 20

    rlm._sub = ScriptedLM(sub)
    rlm._root = ScriptedLM([repl("x = 1"), repl("a = llm_query('paid ' * 50)\nb = llm_query('hang')")])
    task = asyncio.create_task(rlm.aask(corpus, "q?", execution_id=EID))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_resume_keeps_the_spend_of_the_turn_in_flight(small_corpus: Path):
    first = RLM(model="baseline", cache=False)
    corpus = first.ingest(small_corpus)
    asyncio.run(_stopped_in_turn_2(first, corpus))
    meta = first.store.meta
    assert [t["turn"] for t in meta.get_turns(EID)] == [1]
    paid = meta.get_subcalls(EID)
    assert [s["id"] for s in paid] == ["t2.1"] and paid[0]["input_tokens"] > 0

    sub = ScriptedLM(lambda m: "NEW")
    again = RLM(model=ScriptedLM([repl("FINAL('done')")]), sub_model=sub, cache=False)
    ans = asyncio.run(again.aask(corpus, "q?", execution_id=EID, resume=True))
    assert ans.status is Status.COMPLETED and ans.text == "done"
    # what the abandoned call cost still counts (it was paid) ...
    turns = meta.get_turns(EID)
    assert ans.usage.input_tokens == sum(t["input_tokens"] for t in turns) + paid[0]["input_tokens"]
    assert ans.usage.output_tokens == sum(t["output_tokens"] for t in turns) + paid[0]["output_tokens"]
    # ... because its record is kept, marked abandoned: never a replay's answer
    records = meta.get_subcalls(EID)
    assert [(s["id"], s.get("abandoned")) for s in records] == [("t2.1", True)]
    assert ans.usage.sub_calls == 0 and sub.calls == []  # the redone turn made none
    assert stored_usage(meta, EID).input_tokens == ans.usage.input_tokens


def test_resume_cancels_the_whole_abandoned_subtree(small_corpus: Path):
    meta = RLM(model="baseline").store.meta
    root = ExecutionRecord(execution_id="exe_root", corpus_id="c", question="q", root_id="exe_root")
    child = ExecutionRecord(
        execution_id="exe_child", corpus_id="c", question="q", parent_id="exe_root", root_id="exe_root", depth=1
    )
    grand = ExecutionRecord(
        execution_id="exe_grand", corpus_id="c", question="q", parent_id="exe_child", root_id="exe_root", depth=2
    )
    done = ExecutionRecord(
        execution_id="exe_done",
        corpus_id="c",
        question="q",
        parent_id="exe_child",
        root_id="exe_root",
        depth=2,
        status="COMPLETED",
    )
    for rec in (root, child, grand, done):
        meta.put_execution(rec)
    meta.add_turn("exe_root", 1, {"turn": 1, "prompt": [{"role": "user", "content": "q"}]})
    abandon_in_flight(meta, "exe_root", 1)
    assert meta.get_execution("exe_root").status == "RUNNING"  # the one being resumed
    assert meta.get_execution("exe_child").status == "CANCELLED"
    assert meta.get_execution("exe_grand").status == "CANCELLED"  # was left RUNNING
    assert "abandoned" in (meta.get_execution("exe_grand").error or "")
    assert meta.get_execution("exe_done").status == "COMPLETED"
