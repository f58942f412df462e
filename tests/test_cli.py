"""The `rlmx` command as a user runs it: real processes, the shared state_union corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def rlmx(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlmx.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def marshall(state_union: Path) -> dict:
    proc = rlmx("ask", str(state_union), "Which addresses mention the Marshall Plan?", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "using the offline baseline policy" in proc.stderr  # the one-line notice
    return json.loads(proc.stdout)


def test_ask_json_and_verify(marshall: dict):
    assert marshall["status"] == "COMPLETED"
    assert set(marshall) >= {"execution_id", "status", "answer", "citations", "usage", "cost_usd"}
    assert marshall["citations"]
    for c in marshall["citations"]:
        assert set(c) >= {"doc_id", "doc_name", "start", "end", "checksum", "text"}
        assert "marshall plan" in c["text"].lower()
    ok = rlmx("verify", "-", input=json.dumps(marshall))
    assert ok.returncode == 0 and "3 of 3 citations verified" in ok.stdout


def test_verify_rejects_tampering(marshall: dict, tmp_path: Path):
    bad = json.loads(json.dumps(marshall))
    bad["citations"][0]["checksum"] = "sha256:" + "0" * 64
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad))
    proc = rlmx("verify", str(f))
    assert proc.returncode == 1 and "checksum does not match" in proc.stderr
    bad = json.loads(json.dumps(marshall))
    bad["citations"][1]["end"] += 1
    assert rlmx("verify", "-", input=json.dumps(bad)).returncode == 1
    assert rlmx("verify", "-", input="not json").returncode == 2


def test_text_output_has_numbered_citations_and_cost_line(state_union: Path):
    proc = rlmx("ask", str(state_union), "Which addresses mention the Marshall Plan?", "-q")
    assert proc.returncode == 0
    assert "[1] 1951-Truman.txt" in proc.stdout and "Citations:" in proc.stdout
    assert "COMPLETED · $0.0000 · 2 turns" in proc.stdout


def test_question_file_and_literal_question_wins(state_union: Path, tmp_path: Path):
    qf = tmp_path / "q.txt"
    qf.write_text("Which addresses mention the Marshall Plan?")
    one = json.loads(rlmx("ask", str(state_union), "--question-file", str(qf), "--json", "-q").stdout)
    assert "Marshall" in one["answer"]
    two = json.loads(
        rlmx(
            "ask",
            str(state_union),
            "Which addresses mention the Peace Corps?",
            "--question-file",
            str(qf),
            "--json",
            "-q",
        ).stdout
    )
    assert "Peace Corps" in two["answer"]


def test_executions_list_and_show(marshall: dict):
    eid = marshall["execution_id"]
    assert eid in rlmx("executions", "list").stdout
    shown = rlmx("executions", "show", eid)
    assert shown.returncode == 0 and "turn 1" in shown.stdout and "context.grep" in shown.stdout
    trace = json.loads(rlmx("executions", "show", eid, "--json").stdout)
    assert trace["execution"]["execution_id"] == eid and len(trace["turns"]) == 2
    assert trace["turns"][0]["code"] and trace["turns"][1]["final"]["kind"] == "FINAL"
    missing = rlmx("executions", "show", "exe_missing")
    assert missing.returncode == 1 and "exe_missing" in missing.stderr


def test_errors_are_clear(tmp_path: Path):
    proc = rlmx("ask", str(tmp_path / "nope"), "question?")
    assert proc.returncode == 1 and "nope" in proc.stderr and "Traceback" not in proc.stderr
    proc = rlmx("ask", "only-a-question")
    assert proc.returncode == 2
    proc = rlmx("ask", str(tmp_path), "q?", "--model", "nosuch:model")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


def test_exit_code_for_max_turns(small_corpus: Path, tmp_path: Path):
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["```repl\nprint(1)\n```", "still thinking", "FINAL(partial)"]))
    proc = rlmx(
        "ask",
        str(small_corpus),
        "q?",
        "--model",
        f"scripted:{script}",
        "--max-turns",
        "2",
        "--json",
    )
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["status"] == "MAX_TURNS_EXCEEDED"
