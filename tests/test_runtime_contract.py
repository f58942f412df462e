"""Runtime mode has answerer mode's contract (issue 13 item 1): the same root system prompt,
the same truncated observations, turns and budget left, the last turn announced; fenced
``repl`` steps; the prompt names the documents; hits carry their DocView."""

from __future__ import annotations

from pathlib import Path

from rlmx import RLM
from rlmx.engine.blocks import step_code
from rlmx.engine.observation import LAST_TURN_NOTE
from rlmx.engine.prompting import PROMPT_DOCS, context_description, context_summary
from rlmx.lm import ScriptedLM
from rlmx.sandbox.base import ContextDoc, ContextSpec
from service_support import client, finished, ready_session

BUDGETS = {"max_turns": 4, "max_sub_calls": 5}


def test_runtime_prompt_is_the_answerer_system_prompt(svc, key, small_corpus: Path):
    with client(svc) as c:
        s = ready_session(c, key, [{"path": str(small_corpus)}])
        r = c.post(
            f"/v1/sessions/{s['session_id']}/executions",
            json={"question": "What rebuilt Europe?", "models": {"root": "baseline"}, "budgets": BUDGETS},
            headers=key,
        )
        eid = r.json()["execution_id"]
        finished(c, key, eid)
        sent = c.get(f"/v1/executions/{eid}/trace", headers=key).json()["turns"][0]["prompt"][0]
        assert sent["role"] == "system"

        r = c.post(f"/v1/sessions/{s['session_id']}/executions/runtime", json={"budgets": BUDGETS}, headers=key)
        assert r.status_code == 201
        body = r.json()
        assert body["prompt"] == sent["content"]
        assert "'alpha.txt'" in body["prompt"] and "context.doc(name)" in body["prompt"]
        ctx = body["context"]
        assert ctx["n_docs"] == 3 and ctx["next_offset"] is None and ctx["offset"] == 0
        assert len(ctx["docs"]) == 3 and "alpha.txt" in [d["name"] for d in ctx["docs"]]
        assert ctx["total_chars"] == sum(d["length"] for d in ctx["docs"])

        rid = body["execution_id"]
        got = c.get(f"/v1/executions/{rid}/prompt", headers=key).json()
        assert got["prompt"] == body["prompt"] and got["context"] == ctx
        page = c.get(f"/v1/executions/{rid}/prompt?offset=1&limit=1", headers=key).json()["context"]
        assert page["docs"] == [ctx["docs"][1]] and page["next_offset"] == 2
        assert c.get(f"/v1/executions/{eid}/prompt", headers=key).status_code == 409  # answerer: see its trace
        assert c.get("/v1/executions/exe_nope/prompt", headers=key).status_code == 404


def test_steps_answer_the_observation_turns_and_budget_left(svc, key, small_corpus: Path):
    with client(svc) as c:
        s = ready_session(c, key, [{"path": str(small_corpus)}])
        rid = c.post(
            f"/v1/sessions/{s['session_id']}/executions/runtime", json={"budgets": BUDGETS}, headers=key
        ).json()["execution_id"]
        steps = f"/v1/executions/{rid}/steps"

        fenced = (
            "I will grep.\n```repl\nh = context.grep('Zürich')[0]\nprint(h.doc.name == h.doc_name, len(h.doc))\n```"
        )
        step = c.post(steps, json={"code": fenced}, headers=key).json()
        assert step["success"], step
        assert step["stdout"] is None and step["span_log"] is None  # neither by default
        assert "Turn 1 output:\nTrue " in step["observation"] and "Turns left: 3." in step["observation"]
        assert step["turns_left"] == 3 and not step["last_turn"]
        assert step["budget_left"]["turns"] == 3 and step["budget_left"]["sub_calls"] == 5

        big = "print('a' * 500_000 + 'b' * 500_000)"
        step = c.post(steps, json={"code": big}, headers=key).json()
        obs = step["observation"]
        assert "characters cut" in obs and "of 1,000,001 characters" in obs and len(obs) < 30_000
        assert step["turns_left"] == 2 and step["stdout"] is None
        assert LAST_TURN_NOTE not in obs

        step = c.post(f"{steps}?include=stdout,span_log", json={"code": big}, headers=key).json()
        assert step["stdout"] == "a" * 500_000 + "b" * 500_000 + "\n" and step["span_log"] == []
        assert (
            step["turns_left"] == 1
            and step["last_turn"]
            and obs.replace("Turn 2", "Turn 3").replace("left: 2", "left: 1") in step["observation"]
        )
        assert step["observation"].endswith(LAST_TURN_NOTE)  # the last turn is announced

        assert c.post(f"{steps}?include=everything", json={"code": "1"}, headers=key).status_code == 422
        step = c.post(steps, json={"code": "```repl\nFINAL('done')\n```"}, headers=key).json()
        assert step["status"] == "COMPLETED" and step["answer"] == "done" and step["turns_left"] == 0


def test_answerer_mode_announces_the_last_turn_to_the_root_lm(small_corpus: Path):
    root = ScriptedLM(["```repl\nprint(1)\n```", "```repl\nprint(2)\n```", "FINAL('x')"])
    RLM(model=root, budgets={"max_turns": 3}).ask(small_corpus, "q?")
    first, second = root.calls[1][-1]["content"], root.calls[2][-1]["content"]
    assert "Turns left: 2." in first and LAST_TURN_NOTE not in first
    assert "Turns left: 1." in second and second.endswith(LAST_TURN_NOTE)


def test_the_prompt_names_the_first_documents_and_how_to_list_the_rest(tmp_path: Path):
    docs = [ContextDoc(doc_id=f"d{i}", name=f"doc{i}.txt", length=10 + i, text_path="x") for i in range(120)]
    spec = ContextSpec(docs=docs)
    listing = context_description(spec)["doc_listing"]
    assert "- [0] 'doc0.txt': 10" in listing and f"'doc{PROMPT_DOCS - 1}.txt'" in listing
    assert f"'doc{PROMPT_DOCS}.txt'" not in listing and "70 more" in listing and "context.names[50:]" in listing
    page = context_summary(spec, offset=100, limit=50)
    assert page["n_docs"] == 120 and len(page["docs"]) == 20 and page["next_offset"] is None
    assert page["docs"][0] == {"index": 100, "name": "doc100.txt", "length": 110}


def test_step_code_takes_the_fenced_block_or_the_bare_code():
    assert step_code("x = 1\nprint(x)") == "x = 1\nprint(x)"
    assert step_code("Plan.\n```repl\nprint(2)\n```\nmore") == "print(2)"
    assert step_code("```python\nprint(3)\n```") == "print(3)"
    assert step_code("print('```')") == "print('```')"
    assert step_code("```text\nnotes\n```\nFINAL(42)") == "FINAL('42')"
