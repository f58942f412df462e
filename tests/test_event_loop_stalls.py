"""No blocking I/O on event loops (issue 8 item 6): a worker process runs answerer
executions under asyncio debug mode (``PYTHONASYNCIODEBUG=1``: a callback that holds the loop
for more than 0.1 s is logged) with a short lease (``RLMX_LEASE_SECONDS=3``); any such stall,
or a worker claiming a job it is running, fails the test.

The store is the embedded SQLite file (where a blocked loop once made a worker miss its own
heartbeat, claim its own job again and pay the LM twice) and PostgreSQL; the LM is a local
OpenAI-compatible server (in the test process) reached through the real SDK."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rlmx.dev import MockLLMServer
from rlmx.service.core import Service
from rlmx.service.settings import ServiceSettings
from rlmx.store import open_store

MODELS = {"root": "openai:root", "sub": "openai:sub"}


def _root(model: str, messages: list[dict[str, Any]]) -> str:
    turn = sum(1 for m in messages if m["role"] == "assistant") + 1
    if turn < 4:
        calls = f"r{turn} = llm_query_batched(['q{turn}a', 'q{turn}b', 'q{turn}c'])"
        return f"```repl\nhits = context.grep('plan')\n{calls}\nprint(len(hits), r{turn})\n```"
    return "```repl\nFINAL(r1[0] + r3[2])\n```"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_worker_never_stalls_its_loop_nor_reclaims_its_own_job(
    tmp_path: Path, small_corpus: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, backend: str
) -> None:
    with MockLLMServer(scripts={"root": _root, "sub": lambda m, msgs: f"A({msgs[-1]['content']})"}) as srv:
        env = {
            **os.environ,
            "OPENAI_BASE_URL": srv.base_url,
            "OPENAI_API_KEY": "test",
            "RLMX_SERVICE_MODELS": "openai:root,openai:sub",
            "RLMX_LEASE_SECONDS": "3",
            "RLMX_POLL_SECONDS": "0.1",
        }
        for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "RLMX_SERVICE_MODELS"):
            monkeypatch.setenv(k, env[k])
        home = tmp_path / "home"
        url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
        if url:
            env["RLMX_DATABASE_URL"] = url
        store = open_store(home, database_url=url, migrate=True)
        svc = Service(ServiceSettings(home=home, service_models="openai:root,openai:sub"), store)
        sid = svc.create_session("acme", [{"source_name": "c", "path": str(small_corpus)}], queue=False).session_id
        svc.ingest_session(sid)
        eids = [
            svc.create_execution("acme", sid, {"question": f"Question {i}?", "models": MODELS})["execution_id"]
            for i in range(4)
        ]
        worker = subprocess.run(
            [sys.executable, "-m", "rlmx.cli", "worker", "--concurrency", "4", "--until-idle"],
            env={**env, "RLMX_HOME": str(home), "PYTHONASYNCIODEBUG": "1"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        log = worker.stdout + worker.stderr
        assert worker.returncode == 0, log
        for eid in eids:
            rec = svc.meta.get_execution(eid)
            assert rec.status == "COMPLETED", (rec.error, log)
            job = svc.meta.get_job(eid)
            assert job is not None and job.state == "DONE"
            if backend == "sqlite":
                assert job.attempts == 1, f"{eid} was claimed {job.attempts} times:\n{log}"
        stalls = [line for line in log.splitlines() if "Executing" in line and "seconds" in line]
        assert stalls == [], "\n".join(stalls)
        assert "lost" not in log and "attempt 2" not in log and "stalled worker" not in log, log
        roots = [len(r.messages) for r in srv.requests if r.model == "root"]
        assert len(roots) == 4 * 4  # 4 turns each, nothing paid twice
        svc.close()
