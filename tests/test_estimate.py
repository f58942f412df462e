"""Pre-run cost estimate (issue 11, item 6): the formula, and through the real API, CLI and
service against a local OpenAI-compatible server that must receive no request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlmx import RLM, Status
from rlmx.dev import MockLLMServer
from rlmx.engine.estimate import EstimateInputs, estimate_cost, tokens_of_chars
from rlmx.lm.pricing import Price, PriceTable
from rlmx.types import Budgets
from service_support import auth, client, make_service

PRICES = PriceTable({"openai:r": Price(2.0, 8.0), "openai:s": Price(0.5, 1.0)})


def _inputs(**over) -> EstimateInputs:
    base = dict(
        corpus_chars=400_000,
        documents=3,
        prompt_chars=6_000,
        root_spec="openai:r",
        sub_spec="openai:s",
        budgets=Budgets(max_turns=5, max_sub_calls=20, max_depth=0),
        output_max_chars=8_000,
        sub_lm_chars=200_000,
        root_window=100_000,
        sub_window=100_000,
    )
    base.update(over)
    return EstimateInputs(**base)


def test_formula_low_high_and_worst_case():
    est = estimate_cost(_inputs(), PRICES)
    s = tokens_of_chars(6_000)  # 1,500
    # low: 3 turns, growth 500 + 500 a turn; 2 sub-calls of 2,000 in / 200 out
    assert est.low.root_input_tokens == s + (s + 1_000) + (s + 2_000)
    assert (est.low.root_output_tokens, est.low.sub_calls, est.low.sub_input_tokens) == (1_500, 2, 4_000)
    assert est.low.usd == pytest.approx(((3 * s + 3_000) * 2 + 1_500 * 8 + 4_000 * 0.5 + 400 * 1) / 1e6, abs=1e-6)
    # high: 10 turns capped at max_turns=5, growth 2,000 + 8,000/4; one pass in 50,000-char chunks
    assert est.high.turns == 5 and "max_turns" in est.high.capped_by
    assert est.high.root_input_tokens == sum(s + t * 4_000 for t in range(5))
    assert est.high.sub_calls == 8 and est.high.sub_input_tokens == 8 * (12_500 + 200)
    # worst: max_turns + 1 calls growing by 8,000 + 2,000 tokens, capped by the root window
    w = est.worst
    assert w.turns == 6 and w.root_input_tokens == sum(min(100_000, s + t * 10_000) for t in range(6))
    assert w.sub_calls == 20 and w.sub_input_tokens == 20 * (50_000 + 200)
    assert w.total_tokens == w.root_input_tokens + w.root_output_tokens + w.sub_input_tokens + w.sub_output_tokens
    assert est.low.usd < est.high.usd < w.usd


def test_caps_unknown_prices_and_unbounded():
    capped = estimate_cost(_inputs(budgets=Budgets(max_turns=5, max_total_tokens=50_000, max_cost_usd=0.05)), PRICES)
    assert capped.worst.total_tokens == 50_000 and capped.worst.sub_calls is None
    assert capped.worst.usd == 0.05 and {"max_total_tokens", "max_cost_usd"} <= set(capped.worst.capped_by)
    unbounded = estimate_cost(_inputs(budgets=Budgets(max_turns=5)), PRICES)
    assert unbounded.worst.total_tokens is None and unbounded.worst.usd is None
    assert any("unbounded" in n for n in unbounded.notes)
    unknown = estimate_cost(_inputs(sub_spec="openai:nobody-prices-this"), PRICES)
    assert unknown.low.usd is None and unknown.worst.usd is None and not unknown.prices_known["sub"]
    assert any("USD unknown" in n and "openai:nobody-prices-this" in n for n in unknown.notes)
    no_subs = estimate_cost(_inputs(budgets=Budgets(max_turns=5, max_sub_calls=0)), PRICES)
    assert no_subs.high.sub_calls == 0 and no_subs.worst.sub_input_tokens == 0
    d = capped.to_dict()
    assert d["paper_cost_per_query_usd"]["GPT-5"]["RLM"]["OOLONG"] == {"mean": 0.43, "sd": 0.85}
    json.dumps(d)  # JSON-able


def _doc_folder(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    for i in range(3):
        (d / f"part{i}.txt").write_text(f"Part {i}. " + "The committee met and took notes. " * 400, encoding="utf-8")
    return d


ROOT = ["```repl\nprint(len(context))\n```", "```repl\nFINAL('three parts')\n```"]


def test_estimate_calls_no_model_and_brackets_a_real_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    docs = _doc_folder(tmp_path)
    with MockLLMServer(scripts={"mock-root": list(ROOT)}) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        rlm = RLM(model="openai:mock-root", sub_model="openai:mock-sub", budgets={"max_turns": 4, "max_sub_calls": 3})
        est = rlm.estimate(docs, "How many parts?")
        assert srv.requests == [], "an estimate must not call a model"
        ans = rlm.ask(docs, "How many parts?")
        first = srv.requests[0]
    assert ans.status is Status.COMPLETED, ans.error
    assert est.corpus["documents"] == 3 and est.corpus["characters"] == sum(len(p.read_text()) for p in docs.iterdir())
    # the estimate's turn-1 prompt is the prompt the run really sent
    assert est.corpus["prompt_tokens"] == tokens_of_chars(sum(len(m["content"]) for m in first.messages))
    assert est.low.usd is None and not est.prices_known["root"]  # no price for openai:mock-root
    assert est.worst.total_tokens is not None and ans.usage.total_tokens <= est.worst.total_tokens


def test_cli_ask_estimate_sends_nothing(tmp_path: Path):
    docs = _doc_folder(tmp_path)
    with MockLLMServer(scripts={"mock-root": list(ROOT)}) as srv:
        env = {**os.environ, "OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "t", "RLMX_HOME": str(tmp_path / "h")}
        cmd = [
            sys.executable,
            "-m",
            "rlmx.cli",
            "ask",
            str(docs),
            "How many parts?",
            "-q",
            "--model",
            "openai:mock-root",
        ]
        js = subprocess.run(
            [*cmd, "--estimate", "--json", "--max-sub-calls", "5"], env=env, capture_output=True, text=True, timeout=120
        )
        txt = subprocess.run([*cmd, "--estimate"], env=env, capture_output=True, text=True, timeout=120)
        assert srv.requests == []
    assert js.returncode == 0, js.stderr
    out = json.loads(js.stdout)
    assert set(out["expected"]) == {"low", "high"} and out["worst_case"]["sub_calls"] == 5
    assert (
        txt.returncode == 0 and "worst case" in txt.stdout and "unbounded" in txt.stdout and "USD unknown" in txt.stdout
    )


def test_service_dry_run_creates_nothing(tmp_path: Path, small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    with MockLLMServer(scripts={"root": list(ROOT)}) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        svc = make_service(tmp_path / "h", allowed_paths=str(small_corpus), service_models="openai:root")
        k, _ = svc.keys.create("acme")
        with client(svc, worker=False) as c:
            sid = svc.create_session("acme", [{"source_name": "c", "path": str(small_corpus)}], queue=False).session_id
            svc.ingest_session(sid)
            body = {"question": "what?", "models": {"root": "openai:root"}, "budgets": {"max_sub_calls": 4}}
            r = c.post(f"/v1/sessions/{sid}/executions?dry_run=true", json=body, headers=auth(k))
            assert r.status_code == 200, r.text
            est = r.json()
            assert est["dry_run"] is True and est["session_id"] == sid
            assert est["estimate"]["worst_case"]["sub_calls"] == 4 and est["estimate"]["corpus"]["documents"] >= 1
            assert svc.meta.list_executions() == [] and srv.requests == []
            bad = c.post(f"/v1/sessions/{sid}/executions?dry_run=true", json={**body, "question": " "}, headers=auth(k))
            assert bad.status_code == 400
            spec = c.get("/openapi.json").json()
            op = spec["paths"]["/v1/sessions/{session_id}/executions"]["post"]
            assert any(p["name"] == "dry_run" for p in op["parameters"]) and "200" in op["responses"]
        svc.close()
