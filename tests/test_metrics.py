"""`/metrics` (issue 12 item 3) of a real `rlmx serve` on 127.0.0.1: parsed with
prometheus-client's own parser, counting a finished execution (a scripted root LM that
makes one sub-call: the LM boundary), opt-in, without a key and without tenant data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rlmx.errors import ConfigError
from service_support import client, free_port, make_service, rlmx_serve, wait_for

TENANT = "tenant-zebra-77"
QUESTION = "What rebuilt Europe after the war?"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_a_finished_execution(tmp_path: Path, small_corpus: Path):
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps({"root": ["```repl\nprint(llm_query('who?'))\n```", "FINAL(the Marshall Plan)"], "sub": ["it"]}),
        encoding="utf-8",
    )
    model = f"scripted:{script}"
    env = {
        **os.environ,
        "RLMX_HOME": str(tmp_path / "home"),
        "RLMX_ALLOWED_PATHS": str(small_corpus),
        "RLMX_METRICS": "1",
        "RLMX_SERVICE_MODELS": model,
    }
    rlmx = [sys.executable, "-m", "rlmx.cli"]
    created = subprocess.run([*rlmx, "keys", "create", "--tenant", TENANT], env=env, capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    h = {"Authorization": f"Bearer {created.stdout.strip()}"}
    with rlmx_serve(env, tmp_path / "serve.log") as served, httpx.Client(base_url=served.base, timeout=30) as c:
        before = _samples(c.get("/metrics").text)
        assert before[("rlmx_queue_depth", (("kind", "answerer"),))] == 0
        sid = c.post("/v1/sessions", json={"docs": [{"path": str(small_corpus)}]}, headers=h).json()["session_id"]
        wait_for(lambda: c.get(f"/v1/sessions/{sid}", headers=h).json()["status"] == "READY", "session")
        r = c.post(f"/v1/sessions/{sid}/executions", json={"question": QUESTION, "models": {"root": model}}, headers=h)
        assert r.status_code == 202, r.text
        eid = r.json()["execution_id"]
        with c.stream("GET", f"/v1/executions/{eid}/events", headers=h) as resp:
            kinds = [ln[7:] for ln in resp.iter_lines() if ln.startswith("event: ")]
        assert kinds[-1] == "final"
        resp = c.get("/metrics")  # no API key
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
        text = resp.text
    m = _samples(text)
    assert m[("rlmx_executions_total", (("level", "root"), ("status", "COMPLETED")))] == 1
    assert ("rlmx_executions_total", (("level", "root"), ("status", "COMPLETED"))) not in before
    assert m[("rlmx_executions_started_total", (("level", "root"),))] == 1
    assert m[("rlmx_turns_total", (("level", "root"),))] == 2
    assert m[("rlmx_subcalls_total", (("kind", "llm_query"),))] == 1
    assert m[("rlmx_lm_calls_total", (("model", model), ("role", "root")))] == 2
    assert m[("rlmx_lm_calls_total", (("model", model), ("role", "sub")))] == 1
    assert m[("rlmx_lm_tokens_total", (("direction", "input"), ("model", model)))] > 0
    assert m[("rlmx_step_seconds_count", ())] == 2
    assert m[("rlmx_ingested_documents_total", ())] == 3
    assert m[("rlmx_ingested_characters_total", ())] > 0
    assert m[("rlmx_queue_depth", (("kind", "answerer"),))] == 0
    for secret in (TENANT, sid, eid, QUESTION, str(small_corpus)):
        assert secret not in text  # no tenant data in any name, label or value


def test_metrics_are_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("RLMX_METRICS", raising=False)
    service = make_service(tmp_path / "home")
    try:
        with client(service, worker=False) as c:
            assert c.get("/metrics").status_code == 404
        monkeypatch.setenv("RLMX_METRICS", "perhaps")
        with pytest.raises(ConfigError, match="RLMX_METRICS"):
            client(service, worker=False)
    finally:
        service.close()


def test_a_worker_serves_the_metrics_of_its_own_runs(tmp_path: Path, small_corpus: Path):
    """`rlmx worker --metrics-port`: the runs of a separate worker process are scraped there."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"root": ["FINAL(the Marshall Plan)"], "sub": ["it"]}), encoding="utf-8")
    model = f"scripted:{script}"
    env = {**os.environ, "RLMX_HOME": str(tmp_path / "home"), "RLMX_ALLOWED_PATHS": str(small_corpus)}
    env["RLMX_SERVICE_MODELS"] = model
    svc = make_service(tmp_path / "home", allowed_paths=str(small_corpus), service_models=model)
    k, _ = svc.keys.create(TENANT)
    h = {"Authorization": f"Bearer {k}"}
    port = free_port()
    log = (tmp_path / "worker.log").open("wb")
    rlmx = [sys.executable, "-m", "rlmx.cli"]
    proc = subprocess.Popen(
        [*rlmx, "worker", "--metrics-port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        with client(svc, worker=False) as c, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as m:
            sid = c.post("/v1/sessions", json={"docs": [{"path": str(small_corpus)}]}, headers=h).json()["session_id"]
            wait_for(lambda: c.get(f"/v1/sessions/{sid}", headers=h).json()["status"] == "READY", "session (worker)")
            body = {"question": QUESTION, "models": {"root": model}}
            eid = c.post(f"/v1/sessions/{sid}/executions", json=body, headers=h).json()["execution_id"]
            wait_for(lambda: c.get(f"/v1/executions/{eid}", headers=h).json()["status"] != "RUNNING", "execution")

            def counted() -> dict | None:
                got = _samples(m.get("/metrics").text)
                return got if got.get(("rlmx_executions_total", (("level", "root"), ("status", "COMPLETED")))) else None

            samples = wait_for(counted, "the worker's metrics to count the execution", 30)
            text = m.get("/metrics").text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        svc.close()
    assert samples[("rlmx_ingested_documents_total", ())] == 3
    assert samples[("rlmx_queue_depth", (("kind", "answerer"),))] == 0
    for secret in (TENANT, sid, eid, QUESTION):
        assert secret not in text
