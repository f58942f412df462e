"""Issue 9 item 9: ``usage.sub_calls`` counts the sub-calls that ran (a reservation that
never ran is given back), resume keeps the spend of the turn in flight and cancels the
whole subtree it abandoned. Real REPL processes; scripted LMs at the LM boundary."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rlmx import RLM, Status
from rlmx.engine.trace import load_trace
from rlmx.lm import ScriptedLM
from rlmx.lm.base import estimate_tokens

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
