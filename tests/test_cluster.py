"""``rlmx dev cluster`` end to end (issue 8 item 8): a real PostgreSQL, a real S3 endpoint
(moto), 2 API servers and 3 workers started by ``rlmx dev cluster up`` as a subprocess; one
key serves both API servers, a session created on one is READY on the other, an answerer
execution created on one is read, streamed and its citations verified on the other; then
``down`` stops everything. Needs the PostgreSQL server binaries and ``moto[server]``: without
them the test fails with the cluster's own message (it never skips)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from click.testing import CliRunner

from rlmx.dev import _procs
from service_support import wait_for

RLMX = [sys.executable, "-m", "rlmx.cli"]


def _rlmx(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RLMX, *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def _exports(stdout: str) -> dict[str, str]:
    pairs = [ln[len("export ") :].split("=", 1) for ln in stdout.splitlines() if ln.startswith("export ")]
    return {k: v.strip("'") for k, v in pairs}


@pytest.mark.timeout(480)
def test_cluster_up_serves_one_store_from_every_api_server_then_down(tmp_path: Path, small_corpus: Path) -> None:
    folder = tmp_path / "cluster"
    cluster = ["dev", "cluster"]
    up = _rlmx(*cluster, "up", "--dir", str(folder), "--allowed-paths", str(small_corpus))
    state: dict[str, Any] = {}
    try:
        assert up.returncode == 0, (
            "`rlmx dev cluster up` failed; it needs the PostgreSQL server binaries (initdb, pg_ctl: "
            f"apt-get install postgresql) and moto[server] (the dev dependency group):\n{up.stderr}"
        )
        assert "Traceback" not in up.stderr
        state = json.loads((folder / "state.json").read_text())
        assert len(state["api"]) == 2 and len(state["workers"]) == 3
        exports = _exports(up.stdout)
        for var in ("RLMX_DATABASE_URL", "RLMX_BLOB_URL", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "RLMX_KEY"):
            assert exports.get(var), f"{var} missing from the export lines:\n{up.stdout}"
        key = exports["RLMX_KEY"]
        assert key == state["key"] and key.startswith("rlmx_") and key in up.stderr

        status = _rlmx(*cluster, "status", "--dir", str(folder))
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count(" up ") == 7  # postgres, s3, 2 API servers, 3 workers

        again = _rlmx(*cluster, "up", "--dir", str(folder))
        assert again.returncode == 1 and "already running" in again.stderr and "Traceback" not in again.stderr

        # this shell's rlmx commands reach the same store through the exported variables
        cli_env = {**os.environ, **exports, "RLMX_HOME": str(tmp_path / "cli-home")}
        listed = _rlmx("keys", "list", "--tenant", "demo", env=cli_env)
        assert listed.returncode == 0 and "demo" in listed.stdout, listed.stderr

        h = {"Authorization": f"Bearer {key}"}
        url1, url2 = (a["url"] for a in state["api"])
        with httpx.Client(base_url=url1, timeout=30) as one, httpx.Client(base_url=url2, timeout=30) as two:
            assert two.get("/v1/sessions").status_code == 401
            r = one.post("/v1/sessions", json={"docs": [{"source_name": "c", "path": str(small_corpus)}]}, headers=h)
            assert r.status_code == 202, r.text
            sid = r.json()["session_id"]
            session = wait_for(
                lambda: (s := two.get(f"/v1/sessions/{sid}", headers=h).json())["status"] != "CREATING" and s,
                "the session to be ingested by a worker (read on API server 2)",
            )
            assert session["status"] == "READY" and session["n_documents"] == 3, session

            r = two.post(
                f"/v1/sessions/{sid}/executions",
                json={"question": "What rebuilt Europe?", "models": {"root": "baseline"}},
                headers=h,
            )
            assert r.status_code == 202, r.text
            eid = r.json()["execution_id"]
            done = wait_for(
                lambda: (e := one.get(f"/v1/executions/{eid}", headers=h).json())["status"] != "RUNNING" and e,
                "the execution (created on API server 2, read on API server 1)",
            )
            assert done["status"] == "COMPLETED", done
            assert "Marshall" in done["answer"] and done["citations"]
            with two.stream("GET", f"/v1/executions/{eid}/events", headers=h) as events:
                kinds = [ln[7:] for ln in events.iter_lines() if ln.startswith("event: ")]
            assert kinds[0] == "execution_started" and kinds[-1] == "final"
            for c in (one, two):
                verified = c.post("/v1/citations/verify", json={"citations": done["citations"]}, headers=h).json()
                assert verified["all_ok"], verified
            tampered = [{**done["citations"][0], "checksum": "sha256:" + "0" * 64}]
            assert not two.post("/v1/citations/verify", json={"citations": tampered}, headers=h).json()["all_ok"]
    finally:
        down = _rlmx(*cluster, "down", "--dir", str(folder))
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout and "Traceback" not in down.stderr
    procs = [*state["api"], *state["workers"], state["s3"]]
    assert not [p["name"] for p in procs if _procs.alive((p["pid"], p["start_time"]))]
    assert not Path(state["pg"]["folder"]).exists()
    assert not (folder / "state.json").exists()
    after = _rlmx(*cluster, "status", "--dir", str(folder))
    assert after.returncode == 1 and "no cluster" in after.stdout
    again = _rlmx(*cluster, "down", "--dir", str(folder))  # idempotent
    assert again.returncode == 0 and "nothing was running" in again.stdout


def test_missing_postgres_binaries_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rlmx.cli.main import cli
    from rlmx.dev import postgres

    def missing() -> Path:
        raise postgres.PostgresUnavailableError("PostgreSQL server binaries (initdb, pg_ctl) not found; install them")

    monkeypatch.setattr(postgres, "find_pg_bin", missing)
    folder = tmp_path / "cluster"
    result = CliRunner().invoke(cli, ["dev", "cluster", "up", "--dir", str(folder)])
    assert result.exit_code == 1, result.output
    assert "initdb" in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (folder / "state.json").exists()  # what was started is stopped, the state removed


def test_taken_base_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    import socket

    from rlmx.dev.cluster import Cluster, ClusterError, ClusterOptions

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ClusterError, match="in use"):
            Cluster(tmp_path / "c").up(ClusterOptions(api_servers=1, workers=0, base_port=port))
    assert not (tmp_path / "c" / "state.json").exists()
