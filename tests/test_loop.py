"""The full RLM loop with scripted root and sub LMs: real REPL processes, real store."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlmx import RLM, Budgets, Status
from rlmx.engine.trace import load_trace
from rlmx.engine.verify import verify_citations
from rlmx.lm import ScriptedLM
from rlmx.types import span_checksum


def repl(code: str) -> str:
    return f"Let me look.\n```repl\n{code}\n```"


def test_search_subcalls_and_final_with_citations(small_corpus: Path):
    root = ScriptedLM(
        [
            repl(
                "hits = context.search('Marshall Plan Europe', k=3)\n"
                "print(len(context), [h.doc_name for h in hits])\n"
                "answers = llm_query_batched(['Summarise: ' + h.text for h in hits[:2]])\nprint(answers)"
            ),
            "I have what I need, but forgot the code block.",
            repl("FINAL('Europe: ' + answers[0])"),
        ]
    )
    sub = ScriptedLM(
        lambda m: (
            "the Marshall Plan rebuilt Europe after the war"
            if "Marshall" in m[-1]["content"]
            else "nothing relevant here"
        )
    )
    rlm = RLM(model=root, sub_model=sub)
    ans = rlm.ask(small_corpus, "What rebuilt Europe?")
    assert ans.status is Status.COMPLETED
    assert ans.text == "Europe: the Marshall Plan rebuilt Europe after the war"
    assert ans.usage.turns == 3 and ans.usage.sub_calls == 2 and ans.usage.root_calls == 3
    assert ans.cost_usd == 0.0
    # citations: the read spans that fed the sub-call behind the answer, checksummed
    assert ans.citations and all(c.doc_name == "alpha.txt" for c in ans.citations)
    assert all(c.checksum == span_checksum(c.text) for c in ans.citations)
    assert all(ch.ok for ch in verify_citations([c.model_dump() for c in ans.citations], rlm.store))
    # the prose-only turn was fed back as an observation, not a crash
    assert "no ```repl block" in root.calls[2][-1]["content"]
    trace = load_trace(rlm.store.meta, ans.execution_id)
    assert [t["turn"] for t in trace["turns"]] == [1, 2, 3]
    assert len(trace["subcalls"]) == 2 and trace["subcalls"][0]["response"].startswith("the Marshall")
    assert trace["turns"][0]["prompt"][0]["role"] == "system"
    assert trace["execution"]["status"] == "COMPLETED"


def test_root_prompt_states_context_type_and_sizes(small_corpus: Path):
    root = ScriptedLM([repl("FINAL('x')")])
    RLM(model=root).ask(small_corpus, "q?")
    system = root.calls[0][0]["content"]
    assert "list of documents" in system and "3 document(s)" in system
    assert "```repl" in system and "FINAL(" in system and "llm_query_batched" in system


def test_errors_are_observations_and_variables_persist(small_corpus: Path):
    root = ScriptedLM([repl("x = 41\n1/0"), repl("x += 1\nprint(x)"), repl("FINAL_VAR('x')")])
    ans = RLM(model=root).ask(small_corpus, "q?")
    assert ans.status is Status.COMPLETED and ans.text == "42"
    assert "ZeroDivisionError" in root.calls[1][-1]["content"]
    assert "42" in root.calls[2][-1]["content"]


def test_quoted_answer_is_cited_precisely(small_corpus: Path):
    root = ScriptedLM(
        [
            repl("doc = context.doc('alpha.txt')\nprint(doc[0:200])"),
            'FINAL("The Marshall Plan rebuilt Europe after the war")',
        ]
    )
    ans = RLM(model=root).ask(small_corpus, "What rebuilt Europe?")
    assert [c.text for c in ans.citations] == ["The Marshall Plan rebuilt Europe after the war."]
    assert ans.citations[0].start == 0


def test_explicit_citations_from_hits(small_corpus: Path):
    root = ScriptedLM([repl("hits = context.grep(r'Zürich')\nFINAL('In Zürich.', citations=hits)")])
    ans = RLM(model=root).ask(small_corpus, "Where?")
    # a hit is cited as its sentence, not the bare match
    assert [(c.doc_name, c.text) for c in ans.citations] == [
        ("gamma.txt", "Café society met in Zürich; the naïve plan failed in 1961.")
    ]
    assert ans.citations[0].start == 0 and ans.error is None


def test_max_turns_asks_for_a_last_answer(small_corpus: Path):
    root = ScriptedLM([repl("print(1)"), repl("print(2)"), "FINAL(best guess)"])
    ans = RLM(model=root, budgets={"max_turns": 2}).ask(small_corpus, "q?")
    assert ans.status is Status.MAX_TURNS_EXCEEDED and ans.text == "best guess"
    assert "used all 2 turns" in root.calls[2][-1]["content"]


def test_sub_call_budget_ends_with_budget_exceeded(small_corpus: Path):
    root = ScriptedLM(
        [
            repl("print('found something')"),
            repl("r = llm_query_batched(['a', 'b', 'c'])\nprint(r)"),
            repl("FINAL('no')"),
        ]
    )
    sub = ScriptedLM(lambda m: "ok")
    ans = RLM(model=root, sub_model=sub, budgets=Budgets(max_sub_calls=2)).ask(small_corpus, "q?")
    assert ans.status is Status.BUDGET_EXCEEDED
    assert "sub-call budget" in (ans.error or "")
    assert ans.usage.sub_calls == 0 and len(sub.calls) == 0  # a batch reserves all or nothing
    assert "found something" in ans.text  # best answer so far


def test_parallel_children_share_one_budget(small_corpus: Path):
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "with ThreadPoolExecutor(6) as pool:\n"
        "    outs = list(pool.map(lambda i: rlm_query(f'child {i}'), range(6)))\n"
        "print(outs)"
    )

    def script(messages):
        q = messages[1]["content"]
        if "<question>child" in q:
            return repl("print(llm_query('x'))\nprint(llm_query('y'))") if len(messages) == 2 else repl("FINAL('c')")
        return repl(code) if len(messages) == 2 else repl("FINAL('done')")

    lm = ScriptedLM(script)
    sub = ScriptedLM(lambda m: "s")
    ans = RLM(model=lm, sub_model=sub, budgets={"max_sub_calls": 8, "max_depth": 1}).ask(small_corpus, "root q")
    assert ans.status is Status.BUDGET_EXCEEDED
    assert ans.usage.sub_calls <= 8  # 6 children + their llm_query calls, never more than 8
    assert len(sub.calls) <= 2


def test_rlm_query_child_and_citation_propagation(small_corpus: Path, tmp_path: Path):
    def script(messages):
        q = messages[1]["content"]
        n = len(messages)
        if "<question>Find the aid sentence" in q:  # child execution, sees one document
            if n == 2:
                return repl("print(len(context))\ns = context[0:89]\nprint(s)")
            return repl("FINAL(s.split(chr(10))[1])")
        if n == 2:
            return repl("doc = context.doc('alpha.txt')\nr = rlm_query('Find the aid sentence', context=doc)\nprint(r)")
        return repl("FINAL(r)")

    rlm = RLM(model=ScriptedLM(script), budgets={"max_depth": 1})
    ans = rlm.ask(small_corpus, "What did Congress debate?")
    assert ans.status is Status.COMPLETED
    assert ans.text == "Congress debated foreign aid for months."
    assert ans.usage.max_depth_reached == 1
    assert [c.text for c in ans.citations] == ["Congress debated foreign aid for months."]
    trace = load_trace(rlm.store.meta, ans.execution_id)
    (child,) = trace["children"]
    assert child["execution"]["depth"] == 1 and trace["subcalls"][0]["kind"] == "rlm_query"
    assert trace["subcalls"][0]["child_id"] == child["execution"]["execution_id"]


def test_rlm_query_at_max_depth_is_a_plain_sub_call(small_corpus: Path):
    root = ScriptedLM([repl("print(rlm_query('hello'))"), repl("FINAL('ok')")])
    sub = ScriptedLM(lambda m: "from the sub-LM")
    rlm = RLM(model=root, sub_model=sub, budgets={"max_depth": 0})
    ans = rlm.ask(small_corpus, "q?")
    assert "from the sub-LM" in root.calls[1][-1]["content"]
    trace = load_trace(rlm.store.meta, ans.execution_id)
    assert trace["children"] == [] and trace["subcalls"][0]["kind"] == "rlm_query"
    assert "plain sub-LM call" in root.calls[0][0]["content"]


def test_submit_with_output_schema(small_corpus: Path):
    schema = {"type": "object", "properties": {"year": {"type": "integer"}}, "required": ["year"]}
    root = ScriptedLM([repl("SUBMIT(year='soon')"), repl("SUBMIT(year=1961)")])
    ans = RLM(model=root).ask(small_corpus, "When did the plan fail?", output_schema=schema)
    assert ans.status is Status.COMPLETED and ans.fields == {"year": 1961}
    assert "SchemaError" in root.calls[1][-1]["content"]
    assert "SUBMIT(**fields)" in root.calls[0][0]["content"]


def test_cache_hits_cost_nothing_and_are_marked(small_corpus: Path):
    calls = {"n": 0}

    def script(messages):
        calls["n"] += 1
        return repl("print(llm_query('same prompt'))") if len(messages) == 2 else repl("FINAL('done')")

    sub = ScriptedLM(lambda m: "sub answer")
    rlm = RLM(model=ScriptedLM(script), sub_model=sub)
    first = rlm.ask(small_corpus, "q?")
    second = rlm.ask(small_corpus, "q?")
    assert first.usage.cached_calls == 0 and second.usage.cached_calls == 3
    assert calls["n"] == 2 and len(sub.calls) == 1
    trace = load_trace(rlm.store.meta, second.execution_id)
    assert all(t["cached"] for t in trace["turns"]) and trace["subcalls"][0]["cached"] is True
    assert second.cost_usd == 0.0


def test_step_timeout_is_fed_back_and_loop_continues(small_corpus: Path):
    root = ScriptedLM([repl("import time\ntime.sleep(30)"), repl("FINAL('after timeout')")])
    ans = RLM(model=root, step_timeout_s=1).ask(small_corpus, "q?")
    assert ans.status is Status.COMPLETED and ans.text == "after timeout"
    assert "restarted" in root.calls[1][-1]["content"]


def test_output_is_truncated_for_the_root_lm(small_corpus: Path):
    root = ScriptedLM([repl("print('x' * 50000)"), repl("FINAL('ok')")])
    RLM(model=root, output_max_chars=1000).ask(small_corpus, "q?")
    obs = root.calls[1][-1]["content"]
    assert "49,001 of 50,001 characters cut" in obs and len(obs) < 3000


def test_cost_budget_needs_prices(monkeypatch: pytest.MonkeyPatch):
    from rlmx.errors import ConfigError

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")

    with pytest.raises(ConfigError, match="no price"):
        RLM(model="openai:some-unpriced-model", sub_model="baseline", budgets={"max_cost_usd": 1.0})
    rlm = RLM(model="openai:gpt-5-mini", sub_model="baseline", budgets={"max_cost_usd": 1.0})
    assert rlm.prices.cost("openai:gpt-5-mini", 1_000_000, 0) is not None


def test_single_string_context_behaves_like_str():
    text = "alpha beta gamma. " * 1000 + "The secret number is 4217. " + "delta epsilon. " * 1000
    code = "i = context.find('secret number')\nFINAL(context[i:i+26], citations=[(context, i, i+26)])"
    root = ScriptedLM([repl(code)])
    rlm = RLM(model=root)
    ans = rlm.ask(rlm.texts(text), "What is the secret number?")
    assert ans.text == "secret number is 4217. del"
    assert "context is a str" in root.calls[0][0]["content"]
    (c,) = ans.citations  # widened to whole words and sentences
    assert text[c.start : c.end] == c.text == "The secret number is 4217. delta epsilon."


def test_unsaveable_variables_are_named_to_the_model(small_corpus: Path):
    root = ScriptedLM(
        [
            repl("import threading\nlock = threading.Lock()\nx = 1"),
            repl("print(x)"),
            repl("with lock:\n    y = x"),
            repl("print(lock.locked())"),
            repl("FINAL(str(y))"),
        ]
    )
    ans = RLM(model=root).ask(small_corpus, "q?")
    assert ans.status is Status.COMPLETED and ans.text == "1"
    obs = [root.calls[i][-1]["content"] for i in (1, 2, 3, 4)]
    assert "Note:" not in obs[0] and "Note:" not in obs[1]  # nothing read it yet
    assert "Note:" in obs[2] and "lock (cannot pickle" in obs[2], obs[2]  # the step that read it is told
    assert "Note:" not in obs[3]  # once


def test_prompt_says_when_sub_calls_are_disabled(small_corpus: Path):
    root = ScriptedLM([repl("FINAL('x')")])
    RLM(model=root, budgets={"max_sub_calls": 0}).ask(small_corpus, "q?")
    system = root.calls[0][0]["content"]
    assert "disabled in this execution" in system and "llm_query(prompt) -> str" not in system


def test_forged_citations_and_spans_outside_the_context_are_dropped(small_corpus: Path, tmp_path: Path):
    from rlmx.engine.orchestrator import ExecutionState
    from rlmx.sandbox.base import ContextDoc, ContextSpec, SpanEvent

    secret = tmp_path / "other"
    secret.mkdir()
    (secret / "secret.txt").write_text("TENANT-A SECRET: the vault code is 99-31-77.\n", encoding="utf-8")
    rlm = RLM(model="baseline")
    other = rlm.ingest(secret)
    secret_id = other.documents[0].doc_id
    forge = (
        "try:\n    FINAL('x')\nexcept BaseException as e:\n"
        f"    e.signal['citations'] = [{{'doc_id': {secret_id!r}, 'start': 0, 'end': 40}}]\n    raise"
    )
    ans = RLM(model=ScriptedLM([repl(forge)])).ask(small_corpus, "q?")
    assert ans.status is Status.COMPLETED and ans.text == "x"
    assert all(c.doc_id != secret_id for c in ans.citations) and "SECRET" not in str(ans.citations)
    # the span log is filtered the same way, windows included
    spec = ContextSpec(docs=[ContextDoc(doc_id="d", name="d.txt", length=100, text_path="/x", window=(10, 50))])
    st = ExecutionState(None, "e", "e", "c", spec, 0)  # type: ignore[arg-type]
    st.log_spans(
        [
            SpanEvent(kind="read", doc_id="d", start=12, end=20),
            SpanEvent(kind="read", doc_id="d", start=40, end=60),  # runs past the window
            SpanEvent(kind="read", doc_id=secret_id, start=0, end=10),
        ]
    )
    assert [(k[1], k[2], k[3]) for k in st.events] == [("d", 12, 20)]


def test_misspelt_budget_is_refused():
    from rlmx.errors import ConfigError

    with pytest.raises(ConfigError, match="max_cost"):
        RLM(model="baseline", budgets={"max_cost": 0.01})


@pytest.fixture
def union(tmp_path: Path, state_union: Path) -> Path:
    import shutil

    src = state_union  # fails with a message when ../shared is missing (conftest)
    d = tmp_path / "union"
    d.mkdir()
    for name in ("1947-Truman.txt", "1948-Truman.txt"):
        shutil.copy(src / name, d / name)
    return d


def _verified(rlm: RLM, ans) -> bool:  # type: ignore[no-untyped-def]
    return all(ch.ok for ch in verify_citations([c.model_dump() for c in ans.citations], rlm.store))


def test_short_answer_read_from_the_corpus_cites_its_sentence(union: Path):
    code = "d = context.doc('1947-Truman.txt')\nj = d.find('Constitution')\nprint(d[j-200:j+300])\nFINAL(d[j:j+12])"
    rlm = RLM(model=ScriptedLM([repl(code)]))
    ans = rlm.ask(union, "Which document is quoted?")
    assert ans.text == "Constitution"
    (c,) = ans.citations
    assert "Constitution" in c.text and c.text.endswith(".") and c.text[0].isupper() and len(c.text) > 40
    assert _verified(rlm, ans)
    bad = c.model_dump() | {"checksum": span_checksum(c.text + "x")}
    assert not any(ch.ok for ch in verify_citations([bad], rlm.store))  # tampering still fails


def test_grep_hit_answer_cites_one_sentence_not_every_match(union: Path):
    code = "hits = context.grep(r'Constitution')\nprint(len(hits))\nFINAL(hits[0].text)"
    rlm = RLM(model=ScriptedLM([repl(code)]))
    ans = rlm.ask(union, "q?")
    (c,) = ans.citations
    assert c.text != "Constitution" and "Constitution" in c.text and _verified(rlm, ans)


def test_list_answer_cites_each_item_and_absent_answer_nothing(union: Path):
    rlm = RLM(model=ScriptedLM([repl("print(str(context[1])[:3000])"), repl("FINAL('zeppelins of Mars')")]))
    assert rlm.ask(union, "Absent?").citations == []
    code = "x = context.doc('1947-Truman.txt')[0:3000]\nFINAL('Congress, the left and zeppelins')"
    ans = RLM(model=ScriptedLM([repl(code)])).ask(union, "List?")
    cited = " ".join(c.text for c in ans.citations)
    assert "Congress" in cited and "the left" in cited and "zeppelin" not in cited
    assert len(ans.citations) == 2 and ans.citations[0].text.isupper()  # the title line, whole


def test_unread_explicit_citation_is_refused_with_a_message(small_corpus: Path):
    code = "doc = context.doc('alpha.txt')\nprint(doc[0:47])\nFINAL('x', citations=[(doc, 0, 20), (doc, 200, 260)])"
    ans = RLM(model=ScriptedLM([repl(code)])).ask(small_corpus, "q?")
    assert ans.status is Status.COMPLETED and ans.text == "x"
    assert [c.text for c in ans.citations] == ["The Marshall Plan rebuilt Europe after the war."]
    assert ans.error is not None and "citations refused" in ans.error and ":200:260" in ans.error
