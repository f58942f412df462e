"""The root prompt serves retrieval and aggregation, and observations stay quiet (issue 13,
item 2): prompt files carry their provenance in a header that never reaches a model; the
chunk size is a number in characters for the configured sub-LM, and the prompt's own
example code covers every character of a real corpus exactly once; near budgets and the
last turn are said; when the turns run out the answer is the model's reply to the closing
request, never the REPL's output, in answerer and runtime modes alike."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from rlmx import RLM, Status
from rlmx.engine.observation import budget_note, final_request
from rlmx.engine.prompting import chunk_chars
from rlmx.engine.prompts import load_prompt
from rlmx.lm import ScriptedLM
from rlmx.lm.windows import prompt_chars
from rlmx.types import Budgets
from service_support import client, ready_session


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def test_prompt_files_state_their_provenance_and_models_never_see_it():
    files = sorted(p.name[:-3] for p in resources.files("rlmx.engine.prompts").iterdir() if p.name.endswith(".md"))
    assert {"root_system", "strategy", "strategy_no_sub", "final_request", "observation"} <= set(files)
    raw = resources.files("rlmx.engine.prompts").joinpath("root_system.md").read_text(encoding="utf-8")
    assert raw.startswith("<!--") and "arXiv 2512.24601" in raw and "Departs from it" in raw
    for name in files:
        assert "<!--" not in load_prompt(name) and "-->" not in load_prompt(name), name


def test_the_chunk_size_is_computed_for_the_sub_lm(small_corpus: Path):
    assert prompt_chars("openai:gpt-5") == 500_000 and chunk_chars(prompt_chars("openai:gpt-5")) == 100_000
    assert prompt_chars("openai:gpt-4o") == 256_000 and chunk_chars(prompt_chars("openai:gpt-4o")) == 64_000
    assert chunk_chars(prompt_chars("scripted:x")) == 65_000 and chunk_chars(1_000) == 4_000

    root = ScriptedLM([repl("FINAL('x')")])
    RLM(model=root, sub_model=ScriptedLM(["y"])).ask(small_corpus, "How many documents mention wheat?")
    system = root.calls[0][0]["content"]
    assert "chunks of about 65,000 characters" in system and "size = 65000" in system
    assert "llm_query_batched(asks)" in system and "aggregation" in system and "retrieval" in system

    root = ScriptedLM([repl("FINAL('x')")])
    RLM(model=root, budgets={"max_sub_calls": 0}).ask(small_corpus, "q?")
    system = root.calls[0][0]["content"]
    assert "llm_query_batched(asks)" not in system and "Go through every document in code" in system


def _example_blocks(system: str) -> list[str]:
    tail = system[system.index("over two turns") :]
    return re.findall(r"```repl\n(.*?)\n```", tail, re.S)[:2]


def test_the_prompts_aggregation_example_covers_a_real_corpus_exactly_once(state_union: Path):
    """The example code in the prompt, run as written by a root LM, over 66 real files: every
    character goes to exactly one sub-call, no chunk is much over the advised size, and the
    partial results add up."""
    asked: list[str] = []

    def root(messages: list[dict]) -> str:
        turn = sum(1 for m in messages if m["role"] == "assistant")
        blocks = _example_blocks(messages[0]["content"])
        if turn < 2:
            return "Following the advice.\n" + repl(blocks[turn])
        return repl(
            "pieces = sum(-(-len(d) // size) for d in context)\n"
            "overhead = sum(-(-len(d) // size) * (len(d.name) + 5) for d in context)\n"
            "FINAL(f'{total} {pieces} {sum(map(len, chunks))} {context.total_chars + overhead} "
            "{max(map(len, chunks))}')"
        )

    def sub(messages: list[dict]) -> str:
        asked.append(messages[-1]["content"])
        return "1"

    ans = RLM(model=ScriptedLM(root), sub_model=ScriptedLM(sub)).ask(state_union, "How many addresses are there?")
    assert ans.status is Status.COMPLETED, ans
    total, pieces, chunk_total, expected_total, biggest = map(int, ans.text.split())
    assert total == len(asked) > 20  # one sub-call per chunk, each answered "1"
    assert chunk_total == expected_total  # every character once, plus each piece's name header
    assert pieces >= 66 and biggest <= 65_000 + 40
    assert all(a.startswith("How many of the entries below") for a in asked)


def test_near_budgets_are_said_and_far_ones_are_not(small_corpus: Path):
    b = Budgets(max_sub_calls=10, max_total_tokens=1_000, max_wall_seconds=100)
    left = {"sub_calls": 2, "tokens": 900, "cost_usd": None, "wall_seconds": 50.0}
    assert budget_note(left, b) == (
        "Budget nearly spent: 2 of 10 sub-calls left. Finish with what you have, or spend the rest carefully."
    )
    assert budget_note({**left, "sub_calls": 3}, b) is None and budget_note(left, Budgets()) is None
    assert budget_note({**left, "sub_calls": 3, "wall_seconds": 1.0}, b) is None  # no clock in observations

    root = ScriptedLM([repl("r = llm_query_batched(['a', 'b', 'c', 'd'])"), repl("FINAL(r[0])")])
    RLM(model=root, sub_model=ScriptedLM(lambda m: "ok"), budgets={"max_sub_calls": 5}).ask(small_corpus, "q?")
    assert "Budget nearly spent: 1 of 5 sub-calls left." in root.calls[1][-1]["content"]


def test_when_the_turns_run_out_the_answer_is_the_models_reply_to_the_closing_request(small_corpus: Path):
    ask = final_request(max_turns=2, question="q?")
    root = ScriptedLM([repl("print('STDOUT-MARKER')"), repl("print('STDOUT-MARKER')"), "It is the Marshall Plan."])
    ans = RLM(model=root, budgets={"max_turns": 2}).ask(small_corpus, "q?")
    assert ans.status is Status.MAX_TURNS_EXCEEDED and ans.text == "It is the Marshall Plan."
    closing = root.calls[2]
    assert closing[-1]["role"] == "user" and closing[-1]["content"].endswith(ask)
    assert "Turn 2 output:\nSTDOUT-MARKER" in closing[-1]["content"]  # the last output is seen, then the request
    assert [m["role"] for m in closing[-2:]] == ["assistant", "user"]  # no two user messages in a row
    closing_turn = RLM(model=ScriptedLM([])).store.meta.get_turns(ans.execution_id)[-1]
    assert closing_turn["final_request"] and closing_turn["input_tokens"] > 0  # the closing call is accounted

    root = ScriptedLM([repl("print('STDOUT-MARKER')"), repl("print('STDOUT-MARKER')"), repl("print(3)")])
    ans = RLM(model=root, budgets={"max_turns": 2}).ask(small_corpus, "another q?")  # (no cached replies)
    assert ans.status is Status.MAX_TURNS_EXCEEDED and ans.text == ""  # a code-only reply: no answer, no stdout

    root = ScriptedLM([repl("x = 'Marshall Plan'"), repl("print(1)"), repl("FINAL(x)")])
    ans = RLM(model=root, budgets={"max_turns": 2}).ask(small_corpus, "a third q?")
    assert ans.status is Status.MAX_TURNS_EXCEEDED and ans.text == "Marshall Plan"


def test_runtime_clients_get_the_closing_request_and_one_closing_step(svc, key, small_corpus: Path):
    with client(svc) as c:
        s = ready_session(c, key, [{"path": str(small_corpus)}])
        budgets = {"budgets": {"max_turns": 2}, "question": "What rebuilt Europe?"}
        for closing_code, status, answer in [
            ("FINAL(context.grep('Marshall Plan')[0].text)", "MAX_TURNS_EXCEEDED", "Marshall Plan"),
            ("print('STDOUT-MARKER')", "MAX_TURNS_EXCEEDED", ""),
        ]:
            rid = c.post(f"/v1/sessions/{s['session_id']}/executions/runtime", json=budgets, headers=key).json()[
                "execution_id"
            ]
            steps = f"/v1/executions/{rid}/steps"
            first = c.post(steps, json={"code": "print('STDOUT-MARKER')"}, headers=key).json()
            assert first["last_turn"] and first["final_request"] is None
            last = c.post(steps, json={"code": "print('STDOUT-MARKER')"}, headers=key).json()
            assert last["status"] == "RUNNING" and last["turns_left"] == 0 and not last["last_turn"]
            assert last["final_request"] == final_request(max_turns=2, question="What rebuilt Europe?")
            assert last["observation"].endswith(last["final_request"])  # as the root LM reads it
            done = c.post(steps, json={"code": closing_code}, headers=key).json()
            assert done["status"] == status and (done["answer"] or "") == answer, done
            if answer:
                assert done["citations"] and "Marshall Plan" in done["citations"][0]["text"]
            else:
                assert "STDOUT-MARKER" not in (done["answer"] or "")
            e = c.get(f"/v1/executions/{rid}", headers=key).json()
            assert e["status"] == status and (e["answer"] or "") == answer
            assert c.post(steps, json={"code": "print(1)"}, headers=key).status_code == 409
