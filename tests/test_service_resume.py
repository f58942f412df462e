"""Durability: a worker killed mid-execution; another takes the job over when its lease
expires and resumes from the last committed turn without repeating a paid sub-call."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from rlmx.dev import MockLLMServer
from service_support import make_service, wait_for


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "rlmx.cli", "worker", "--concurrency", "1"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def test_killed_worker_resumes_on_another_without_duplicate_subcalls(
    tmp_path: Path, small_corpus: Path, monkeypatch: pytest.MonkeyPatch
):
    in_turn_2 = threading.Event()
    release = threading.Event()
    turn2_calls: list[int] = []

    def root(model: str, messages: list[dict]) -> str:
        turn = sum(1 for m in messages if m["role"] == "assistant") + 1
        if turn == 1:
            return "```repl\nr1 = llm_query('alpha question')\nprint(r1)\n```"
        if turn == 2:
            turn2_calls.append(1)
            if len(turn2_calls) == 1:  # the first worker dies while waiting for this reply
                in_turn_2.set()
                release.wait(120)
            return "```repl\nr2 = llm_query('beta question')\nprint(r2)\n```"
        return "```repl\nFINAL(r1 + ' | ' + r2)\n```"

    def sub(model: str, messages: list[dict]) -> str:
        return f"ANSWER({messages[-1]['content']})"

    home = tmp_path / "home"
    with MockLLMServer(scripts={"root": root, "sub": sub}) as srv:
        env = {
            **os.environ,
            "RLMX_HOME": str(home),
            "OPENAI_BASE_URL": srv.base_url,
            "OPENAI_API_KEY": "test",
            "RLMX_SERVICE_MODELS": "openai:root,openai:sub",
            "RLMX_LEASE_SECONDS": "2",
            "RLMX_POLL_SECONDS": "0.1",
        }
        for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "RLMX_SERVICE_MODELS"):
            monkeypatch.setenv(k, env[k])
        svc = make_service(home, allowed_paths=str(small_corpus), service_models="openai:root,openai:sub")
        sid = svc.create_session("acme", [{"source_name": "c", "path": str(small_corpus)}], queue=False).session_id
        svc.ingest_session(sid)
        eid = svc.create_execution(
            "acme", sid, {"question": "Combine both answers.", "models": {"root": "openai:root", "sub": "openai:sub"}}
        )["execution_id"]

        first = _worker(env, tmp_path / "worker1.log")
        try:
            assert in_turn_2.wait(90), (tmp_path / "worker1.log").read_text()
            assert [t["turn"] for t in svc.meta.get_turns(eid)] == [1]  # turn 1 committed before turn 2 began
        finally:
            _stop(first)  # SIGKILL: no clean-up, its lease must expire
            release.set()
        assert svc.meta.get_execution(eid).status == "RUNNING"

        second = _worker(env, tmp_path / "worker2.log")
        try:
            rec = wait_for(
                lambda: (r := svc.meta.get_execution(eid)).status != "RUNNING" and r, "the resumed execution", 120
            )
            # the execution's end is written before its job is marked done: wait for both
            # before the SIGKILL below, or the kill can land between the two writes
            wait_for(lambda: (j := svc.meta.get_job(eid)) is not None and j.state != "RUNNING", "the job's end", 60)
        finally:
            _stop(second)
        log = (tmp_path / "worker2.log").read_text()
        assert rec.status == "COMPLETED", log
        # r1 came back through the replay of turn 1 (REPL state), r2 from the redone turn 2
        assert rec.answer == "ANSWER(alpha question) | ANSWER(beta question)"
        sub_prompts = [r.messages[-1]["content"] for r in srv.requests if r.model == "sub"]
        assert sub_prompts.count("alpha question") == 1  # no duplicated sub-call
        assert sub_prompts.count("beta question") == 1
        root_turn1 = [r for r in srv.requests if r.model == "root" and len(r.messages) == 2]
        assert len(root_turn1) == 1  # the committed turn's root call was not repeated
        assert [t["turn"] for t in svc.meta.get_turns(eid)] == [1, 2, 3]
        assert [s["id"] for s in svc.meta.get_subcalls(eid)] == ["t1.1", "t2.1"]
        job = svc.meta.get_job(eid)
        assert job is not None and job.state == "DONE" and job.attempts == 2
        kinds = [e["kind"] for e in svc.meta.get_events(eid)]
        assert "execution_resumed" in kinds and kinds[-1] == "final"
        svc.close()


def test_a_worker_stopped_politely_gives_its_job_back(tmp_path: Path, small_corpus: Path, monkeypatch):
    """What `rlmx serve` does on shutdown: the running execution is requeued at once (not
    CANCELLED) and the next worker resumes it."""
    import asyncio

    from rlmx.service.worker import Worker

    box: dict[str, Any] = {}
    release = threading.Event()
    turn2: list[int] = []

    def root(model: str, messages: list[dict]) -> str:
        turn = sum(1 for m in messages if m["role"] == "assistant") + 1
        if turn == 1:
            return "```repl\nr1 = llm_query('alpha question')\n```"
        if turn == 2:
            turn2.append(1)
            if len(turn2) == 1:
                box["loop"].call_soon_threadsafe(box["stop"].set)
                release.wait(60)
            return "```repl\nFINAL(r1)\n```"
        raise AssertionError("no third turn")

    with MockLLMServer(scripts={"root": root, "sub": lambda m, msgs: "A1"}) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        svc = make_service(tmp_path / "home", service_models="openai:root,openai:sub")
        sid = svc.create_session("acme", [{"source_name": "c", "path": str(small_corpus)}], queue=False).session_id
        svc.ingest_session(sid)
        eid = svc.create_execution(
            "acme", sid, {"question": "q", "models": {"root": "openai:root", "sub": "openai:sub"}}
        )["execution_id"]

        async def first() -> None:
            box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
            await Worker(svc, poll_s=0.05).run(box["stop"])

        asyncio.run(first())
        release.set()
        job = svc.meta.get_job(eid)
        assert job is not None and job.state == "QUEUED" and job.lease_owner is None
        assert svc.meta.get_execution(eid).status == "RUNNING"
        asyncio.run(Worker(svc, poll_s=0.05).run(until_idle=True))
        rec = svc.meta.get_execution(eid)
        assert rec.status == "COMPLETED" and rec.answer == "A1"
        assert [r.model for r in srv.requests].count("sub") == 1
        svc.close()
