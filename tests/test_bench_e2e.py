"""`rlmx bench generate → run → report` end to end on tiny tasks: every family, every
method, offline (baseline policies, oracle sub-LM), plus the same run against an
OpenAI-compatible endpoint (the local mock server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rlmx.bench import METHODS, BenchRunner, RunConfig, generate, read_tasks
from rlmx.cli.main import cli
from rlmx.dev.mock_llm import MockLLMServer
from rlmx.store import open_store

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not (SHARED_DATA / "trec").is_dir(), reason="shared data not found")


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_generate_run_report_every_family_and_method(tmp_path: Path) -> None:
    files = []
    for family, lengths in [("sniah", "1k,2k"), ("oolong", "2k"), ("oolong-pairs", "2k"), ("codeqa", "2k")]:
        out = tmp_path / f"{family}.jsonl"
        _invoke("bench", "generate", family, "--n", "2", "--seed", "3", "--lengths", lengths, "--out", str(out),
                "--data", str(SHARED_DATA))  # fmt: skip
        files.append(str(out))
    results = tmp_path / "results.jsonl"
    _invoke("bench", "run", *files, "--methods", ",".join(METHODS), "--out", str(results), "--no-cache", "--quiet")
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    n_tasks = sum(len(list(read_tasks(f))) for f in files)
    assert len(rows) == n_tasks * len(METHODS)
    for r in rows:
        assert r["status"] == "COMPLETED", (r["task_id"], r["method"], r["error"])
        assert 0.0 <= r["score"] <= 1.0
        assert r["cost_usd"] == 0.0 and r["input_tokens"] > 0 and r["turns"] >= 1
    by = {(r["family"], r["method"]): [] for r in rows}
    for r in rows:
        by[(r["family"], r["method"])].append(r)
    # the offline policies do what they say: the oracle labels make aggregation exact,
    # rlm-d0 makes no sub-calls, and sniah's needle is found
    assert all(r["score"] == 1.0 for r in by[("oolong", "rlm-d1")] + by[("oolong-pairs", "rlm-d1")])
    assert all(r["sub_calls"] == 0 for fam in ("oolong", "codeqa") for r in by[(fam, "rlm-d0")])
    assert all(r["sub_calls"] > 0 for r in by[("oolong", "rlm-d1")])
    assert all(r["score"] == 1.0 for r in by[("sniah", "rlm-d1")])
    # base and retrieval are traced executions like an RLM's
    store = open_store()
    rec = store.meta.get_execution(by[("sniah", "base")][0]["execution_id"])
    assert rec.mode == "base" and rec.status == "COMPLETED" and rec.usage["root_calls"] == 1
    assert store.meta.get_turns(rec.execution_id)[0]["prompt"][0]["content"].startswith("[context: ")
    store.close()

    md = tmp_path / "report" / "bench.md"
    _invoke("bench", "report", str(results), "--out", str(md))
    text = md.read_text()
    assert "| method | sniah | oolong | oolong-pairs | codeqa |" in text
    assert "rlmx 0.1.0" in text and "seed 3" in text and "`baseline:bench-oolong`" in text
    summary = json.loads(md.with_suffix(".json").read_text())
    assert {g["method"] for g in summary["groups"]} == set(METHODS)
    assert (md.parent / "bench-score_vs_length.png").stat().st_size > 1000
    assert (md.parent / "bench-cost_distribution.png").stat().st_size > 1000


def test_base_truncates_to_the_window_and_resume_skips_done(tmp_path: Path) -> None:
    tasks = generate("sniah", 2, 0, [4096], data_dir=SHARED_DATA)
    out = tmp_path / "r.jsonl"
    runner = BenchRunner(RunConfig(methods=["base"], window_tokens=4096 + 1500))
    rows = runner.run(tasks, out)
    assert all(r["truncated"] for r in rows)
    assert [r["score"] for r in rows] == [1.0, 0.0]  # needles at 12.5% and 62.5% depth; ~37% kept
    again = BenchRunner(RunConfig(methods=["base", "retrieval"])).run(tasks, out, resume=True)
    assert [r["method"] for r in again] == ["retrieval", "retrieval"]
    assert len(out.read_text().splitlines()) == 4


def test_same_commands_against_an_openai_compatible_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task = generate("sniah", 1, 0, [1024], data_dir=SHARED_DATA)[0]
    value = task.answer

    def reply(model: str, messages: list[dict]) -> str:
        if model == "root" and len(messages) > 1:  # the RLM's root: one REPL turn
            return f"```repl\nFINAL('the number is {value}')\n```"
        return f"Answer: {value}"  # base / retrieval / a sub-LM

    with MockLLMServer(scripts=reply) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        tf = tmp_path / "t.jsonl"
        tf.write_text(task.to_json() + "\n")
        out = tmp_path / "r.jsonl"
        _invoke("bench", "run", str(tf), "--methods", "base,retrieval,rlm-d1", "--model", "openai:root",
                "--sub-model", "openai:sub", "--out", str(out), "--quiet")  # fmt: skip
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["score"] for r in rows] == [1.0, 1.0, 1.0]
        assert all(r["root_model"] == "openai:root" for r in rows)
        assert rows[0]["cost_usd"] is None  # no price known for openai:root: unknown, not zero
        assert rows[0]["input_tokens"] > 0.9 * task.length_tokens  # the whole context went to the server
        assert len(srv.requests) == 3
