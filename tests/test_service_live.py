"""Against a real `rlmx serve` on 127.0.0.1: keys from the CLI, a session from a server
folder, an answerer execution with the baseline model, a runtime step, citations verified,
then a polite stop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx

from service_support import rlmx_serve, wait_for


def test_real_server_round_trip(tmp_path: Path, small_corpus: Path):
    env = {**os.environ, "RLMX_HOME": str(tmp_path / "home"), "RLMX_ALLOWED_PATHS": str(small_corpus)}
    rlmx = [sys.executable, "-m", "rlmx.cli"]
    created = subprocess.run([*rlmx, "keys", "create", "--tenant", "acme"], env=env, capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("rlmx_") and "key_pepper" in created.stderr  # the generated pepper is announced
    h = {"Authorization": f"Bearer {key}"}
    with rlmx_serve(env, tmp_path / "serve.log") as served:
        base = served.base
        with httpx.Client(base_url=base, timeout=30) as c:
            assert c.get("/v1/sessions").status_code == 401
            sid = c.post("/v1/sessions", json={"docs": [{"path": str(small_corpus)}]}, headers=h).json()["session_id"]
            wait_for(lambda: c.get(f"/v1/sessions/{sid}", headers=h).json()["status"] == "READY", "session")
            eid = c.post(
                f"/v1/sessions/{sid}/executions",
                json={"question": "What rebuilt Europe?", "models": {"root": "baseline"}},
                headers=h,
            ).json()["execution_id"]
            with c.stream("GET", f"/v1/executions/{eid}/events", headers=h) as r:
                kinds = [ln[7:] for ln in r.iter_lines() if ln.startswith("event: ")]
            assert kinds[-1] == "final"
            e = c.get(f"/v1/executions/{eid}", headers=h).json()
            assert e["status"] == "COMPLETED" and e["citations"]
            assert c.post("/v1/citations/verify", json={"citations": e["citations"]}, headers=h).json()["all_ok"]
            rid = c.post(f"/v1/sessions/{sid}/executions/runtime", json={}, headers=h).json()["execution_id"]
            step = c.post(
                f"/v1/executions/{rid}/steps?include=stdout", json={"code": "print(len(context))"}, headers=h
            ).json()
            assert step["stdout"] == "3\n"
            assert "/v1/executions/{execution_id}/steps" in c.get("/openapi.json").json()["paths"]
        revoked = subprocess.run([*rlmx, "keys", "revoke", key], env=env, capture_output=True, text=True)
        assert revoked.returncode == 0
        with httpx.Client(base_url=base, timeout=30) as c:
            assert c.get("/v1/sessions", headers=h).status_code == 401
    assert served.proc.returncode == 0, (tmp_path / "serve.log").read_text()  # a polite stop
