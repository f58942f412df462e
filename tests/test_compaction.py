"""History compaction (issue 11, item 5): past a fraction of the root model's window the
older turns are replaced by a summary written by the sub-LM, recorded in the trace, while
the REPL's state persists and the run goes on past what the window would have held."""

from __future__ import annotations

from pathlib import Path

from rlmx import RLM, Status
from rlmx.engine.compaction import make_compactor
from rlmx.lm import ScriptedLM
from rlmx.lm.base import estimate_tokens


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def test_a_long_run_is_compacted_and_keeps_its_repl_state(small_corpus: Path, tmp_path: Path):
    turns = 12
    script = [repl("secret = context.grep('Marshall Plan')[0].text\nprint('x' * 3000)")]
    script += [repl(f"print('{i % 10}' * 3000)") for i in range(2, turns)]
    script += [repl("FINAL(secret)")]
    root = ScriptedLM(script)
    summaries: list[str] = []

    def sub(messages: list[dict]) -> str:
        summaries.append(messages[-1]["content"])
        return f"SUMMARY {len(summaries)}: `secret` holds the answer."

    rlm = RLM(model=root, sub_model=ScriptedLM(sub), home=tmp_path / "home", root_window_tokens=4_000)
    ans = rlm.ask(small_corpus, "What rebuilt Europe?")
    assert ans.status is Status.COMPLETED and ans.text == "Marshall Plan" and ans.citations  # REPL state kept

    sizes = [estimate_tokens("".join(m["content"] for m in call)) for call in root.calls]
    assert max(sizes) <= 4_000 and len(root.calls) == turns, str(sizes)  # never past the window
    uncompacted = estimate_tokens("".join(m["content"] for m in root.calls[-1])) + sum(3000 // 4 for _ in range(turns))
    assert uncompacted > 4_000  # without compaction the last turns would not have fitted
    assert len(summaries) >= 2 and "Turn 1 output:" in summaries[0] and "What rebuilt Europe?" in summaries[0]
    last = root.calls[-1]
    assert [m["role"] for m in last] == ["system", "user"] + ["assistant", "user"] * 2  # roles still alternate
    assert "SUMMARY" in last[1]["content"] and "the REPL's variables are unchanged" in last[1]["content"]

    records = [t for t in rlm.store.meta.get_turns(ans.execution_id) if t.get("compaction")]
    assert len(records) == len(summaries)
    first = records[0]["compaction"]
    assert first["turns"][0] == 1 and first["tokens_after"] < first["tokens_before"]
    assert first["summary"].startswith("SUMMARY 1") and first["input_tokens"] > 0
    assert ans.usage.input_tokens >= sum(r["compaction"]["input_tokens"] for r in records)  # charged


def test_compaction_is_off_where_the_window_is_unknown_and_on_where_it_is_known():
    assert make_compactor(0.8, None, "scripted:x") is None and make_compactor(0.8, None, "openai:my-model") is None
    c = make_compactor(0.8, None, "openai:gpt-5")
    assert c is not None and c.window_tokens == 272_000
    assert make_compactor(None, 1_000, "openai:gpt-5") is None  # None: never
    assert make_compactor(0.5, 1_000, "scripted:x").window_tokens == 1_000  # an override turns it on
