"""`rlmx export` (issue 12 item 5): a round trip from real executions (scripted root LM, the
LM boundary) through the store to fine-tuning records, checked against what the root LM
was really sent and against the `openai` SDK's chat message types."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletionMessageParam
from pydantic import TypeAdapter

from rlmx import RLM
from rlmx.export import TRAJECTORY_FORMAT
from rlmx.lm.scripted import ScriptedLM

MESSAGES = TypeAdapter(list[ChatCompletionMessageParam])


def rlmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlmx.cli", *args], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )


def _run(corpus: Path, root: list[str], sub: list[str], **budgets: Any) -> tuple[str, str, ScriptedLM]:
    lm = ScriptedLM(root)
    rlm = RLM(model=lm, sub_model=ScriptedLM(sub, role="sub"), budgets=budgets, cache=False, output_max_chars=300)
    answer = rlm.ask(corpus, "What does the corpus say?")
    return answer.execution_id, answer.status.value, lm


@pytest.fixture
def runs(small_corpus: Path) -> dict[str, tuple[str, ScriptedLM]]:
    long = _run(
        small_corpus,
        ["```repl\nprint('x' * 5000)\n```", "```repl\nprint(llm_query('summarise: wheat'))\n```", "FINAL(wheat fell)"],
        ["wheat prices fell"],
    )
    capped = _run(small_corpus, ["```repl\nprint(len(context))\n```", "FINAL(three)"], [], max_turns=1)
    return {long[1]: (long[0], long[2]), capped[1]: (capped[0], capped[2])}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_chat_jsonl_is_what_the_root_lm_saw(runs: dict[str, tuple[str, ScriptedLM]], tmp_path: Path):
    assert set(runs) == {"COMPLETED", "MAX_TURNS_EXCEEDED"}
    out, subs = tmp_path / "train.jsonl", tmp_path / "sub.jsonl"
    proc = rlmx("export", "--all", "--out", str(out), "--metadata", "--subcalls", str(subs))
    assert proc.returncode == 0, proc.stderr
    records = _lines(out)
    assert len(records) == 2  # one record per execution, oldest first
    by_id = {r["metadata"]["execution_id"]: r for r in records}
    for status, (eid, lm) in runs.items():
        rec = by_id[eid]
        assert rec["metadata"]["status"] == status
        MESSAGES.validate_python(rec["messages"])
        # the conversation is exactly the root LM's last request plus its answer to it
        sent = [{"role": m["role"], "content": m["content"]} for m in lm.calls[-1]]
        assert rec["messages"][:-1] == sent
        assert rec["messages"][-1]["role"] == "assistant" and "FINAL(" in rec["messages"][-1]["content"]
        assert [m["role"] for m in rec["messages"][:2]] == ["system", "user"]
        roles = [m["role"] for m in rec["messages"][2:]]
        assert roles == ["assistant", "user"] * (len(roles) // 2) + ["assistant"] * (len(roles) % 2)
    observation = by_id[runs["COMPLETED"][0]]["messages"][3]["content"]
    assert "characters cut" in observation and "x" * 150 in observation and "x" * 400 not in observation
    pairs = _lines(subs)
    assert [p["messages"] for p in pairs] == [
        [{"role": "user", "content": "summarise: wheat"}, {"role": "assistant", "content": "wheat prices fell"}]
    ]
    MESSAGES.validate_python(pairs[0]["messages"])
    # without --metadata a record holds only what fine-tuning uploads accept
    bare = tmp_path / "bare.jsonl"
    assert rlmx("export", runs["COMPLETED"][0], "--out", str(bare)).returncode == 0
    assert [set(r) for r in _lines(bare)] == [{"messages"}]


def test_filters_and_trajectory_json(runs: dict[str, tuple[str, ScriptedLM]], tmp_path: Path):
    done, capped = runs["COMPLETED"][0], runs["MAX_TURNS_EXCEEDED"][0]
    out = tmp_path / "ok.jsonl"
    assert rlmx("export", "--since", "1h", "--status", "completed", "--out", str(out)).returncode == 0
    assert len(_lines(out)) == 1
    results = tmp_path / "results.jsonl"
    results.write_text(
        json.dumps({"execution_id": done, "score": 0.2}) + "\n" + json.dumps({"execution_id": capped, "score": 1.0}),
        encoding="utf-8",
    )
    proc = rlmx("export", "--all", "--results", str(results), "--min-score", "0.5", "--metadata", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert [(r["metadata"]["execution_id"], r["metadata"]["score"]) for r in _lines(out)] == [(capped, 1.0)]
    assert rlmx("export", "--since", "2999-01-01", "--out", str(out)).returncode == 0 and _lines(out) == []
    traj = tmp_path / "t.json"
    assert rlmx("export", done, capped, "--format", "trajectory-json", "--out", str(traj)).returncode == 0
    data = json.loads(traj.read_text(encoding="utf-8"))
    assert data["format"] == TRAJECTORY_FORMAT
    assert [t["execution"]["execution_id"] for t in data["executions"]] == [done, capped]
    assert data["executions"][0]["subcalls"][0]["response"] == "wheat prices fell"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--all", "--since", "1h"],
        ["--since", "yesterday"],
        ["exe_nosuch"],
        ["--all", "--status", "DONE"],
        ["--all", "--min-score", "0.5"],
    ],
)
def test_bad_input_exits_2(tmp_path: Path, args: list[str]):
    proc = rlmx("export", *args, "--out", str(tmp_path / "x.jsonl"))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Error" in proc.stderr
