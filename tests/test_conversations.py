"""Conversations (issue 11, item 4): a follow-up keeps the REPL's variables and a compacted
history, and is its own execution — own budget, trace and id — linked to the previous one;
in the library (`RLM.session`), the CLI (`rlmx chat`) and the service
(`POST /v1/executions/{id}/followups`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rlmx import RLM, Status
from rlmx.engine.followup import MAX_ANSWER_CHARS
from rlmx.errors import ConfigError
from rlmx.lm import ScriptedLM


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def test_a_follow_up_keeps_the_variables_and_recalls_the_earlier_answers(small_corpus: Path, tmp_path: Path):
    root = ScriptedLM(
        [
            repl("hits = context.grep('Marshall Plan')\nfound = hits[0].text"),
            repl("FINAL(found)"),
            repl("print(found, len(hits))"),  # the follow-up: variables from the first question
            repl("FINAL(context.grep('Europe after the war')[0].text)"),
        ]
    )
    rlm = RLM(model=root, budgets={"max_turns": 3}, home=tmp_path / "home")
    chat = rlm.session(small_corpus)
    first = chat.ask("What rebuilt Europe?")
    assert first.status is Status.COMPLETED and first.text == "Marshall Plan"
    second = chat.ask("What did it rebuild?")
    assert second.status is Status.COMPLETED and second.text == "Europe after the war" and second.citations
    assert second.execution_id != first.execution_id and chat.last_id == second.execution_id

    opening = root.calls[2][1]["content"]  # the follow-up's first user message
    assert "1. Question: What rebuilt Europe?\n   Answer: Marshall Plan" in opening
    assert "The REPL still holds the variables from before: found, hits." in opening
    assert opening.endswith(root.calls[0][1]["content"].replace("What rebuilt Europe?", "What did it rebuild?"))
    observation = root.calls[3][-1]["content"]
    assert "Turn 1 output:\nMarshall Plan 5" in observation  # found and hits were restored
    meta = rlm.store.meta
    assert meta.get_execution(second.execution_id).previous_id == first.execution_id
    assert meta.get_execution(first.execution_id).previous_id is None
    assert second.usage.turns == 2 and first.usage.turns == 2  # each its own budget and trace
    assert [t["turn"] for t in meta.get_turns(second.execution_id)] == [1, 2]


def test_long_answers_are_cut_and_only_finished_root_executions_over_the_corpus_can_be_followed(
    small_corpus: Path, tmp_path: Path
):
    long = "x" * (MAX_ANSWER_CHARS + 500)
    root = ScriptedLM([repl(f"FINAL({long!r})"), repl("FINAL('ok')")])
    rlm = RLM(model=root, home=tmp_path / "home")
    first = rlm.ask(small_corpus, "q1?")
    assert rlm.ask(small_corpus, "q2?", follow_up=first.execution_id).text == "ok"
    assert "[…500 more characters]" in root.calls[1][1]["content"]

    other = tmp_path / "other"
    other.mkdir()
    (other / "a.txt").write_text("Something else entirely.\n", "utf-8")
    with pytest.raises(ConfigError, match="another corpus"):
        rlm.ask(other, "q3?", follow_up=first.execution_id)
    with pytest.raises(Exception, match="not found"):
        rlm.ask(small_corpus, "q3?", follow_up="exe_nope")


def test_rlmx_chat_asks_each_line_as_a_follow_up(small_corpus: Path, tmp_path: Path):
    script = tmp_path / "root.json"
    script.write_text(
        __import__("json").dumps(
            [repl("n = len(context)\nFINAL(str(n))"), repl("FINAL(str(n * 2))"), repl("FINAL(str(n * 3))")]
        ),
        "utf-8",
    )
    env = {"RLMX_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "rlmx.cli", "chat", str(small_corpus), "--model", f"scripted:{script}"],
        input="How many documents?\n\nAnd twice that?\nThrice?\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answers = [ln for ln in done.stdout.splitlines() if ln and not ln.startswith(" ")]
    assert answers == ["3", "6", "9"], done.stdout  # n survived each follow-up; the empty line was skipped


def test_service_followups_keep_the_variables_across_executions(tmp_path: Path, small_corpus: Path, monkeypatch):
    from rlmx.dev import MockLLMServer
    from service_support import auth, client, finished, make_service, ready_session

    def root(model: str, messages: list[dict]) -> str:
        follow = "follows earlier ones" in messages[1]["content"]
        turn = sum(1 for m in messages if m["role"] == "assistant")
        if not follow:
            return repl("plan = context.grep('Marshall Plan')[0]\nFINAL(plan.text)")
        return (
            repl("print(plan.doc_name)")
            if turn == 0
            else repl("FINAL(context.doc('alpha.txt').grep('Europe')[0].text)")
        )

    with MockLLMServer(scripts={"root": root, "sub": lambda m, msgs: "x"}) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        svc = make_service(tmp_path / "home", allowed_paths=str(small_corpus), service_models="openai:root,openai:sub")
        try:
            k, _ = svc.keys.create("acme")
            other, _ = svc.keys.create("globex")
            key, models = auth(k), {"root": "openai:root", "sub": "openai:sub"}
            with client(svc) as c:
                s = ready_session(c, key, [{"path": str(small_corpus)}])
                body = {"question": "What rebuilt Europe?", "models": models}
                eid = c.post(f"/v1/sessions/{s['session_id']}/executions", json=body, headers=key).json()[
                    "execution_id"
                ]
                assert finished(c, key, eid)["answer"] == "Marshall Plan"
                url = f"/v1/executions/{eid}/followups"
                assert (
                    c.post(url, json={"question": "Where?", "models": models}, headers=auth(other)).status_code == 404
                )
                r = c.post(url, json={"question": "Where did it work?", "models": models}, headers=key)
                assert r.status_code == 202, r.text
                fid = r.json()["execution_id"]
                e = finished(c, key, fid)
                assert e["status"] == "COMPLETED" and e["answer"] == "Europe" and e["previous_id"] == eid
                assert e["session_id"] == s["session_id"]
                trace = c.get(f"/v1/executions/{fid}/trace", headers=key).json()
                assert trace["turns"][0]["stdout"] == "alpha.txt\n"  # `plan` came back from the first execution
                opening = trace["turns"][0]["prompt"][1]["content"]
                assert "Question: What rebuilt Europe?\n   Answer: Marshall Plan" in opening
                missing = c.post("/v1/executions/exe_nope/followups", json={"question": "q"}, headers=key)
                assert missing.status_code == 404
        finally:
            svc.close()
