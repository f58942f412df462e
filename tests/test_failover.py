"""Failover on the scale-out topology (issue 8): 2 API servers and 2 workers, whole
processes, on one PostgreSQL and one S3 endpoint (both real, started by the fixtures), the LM a
local OpenAI-compatible server that logs every request.

* An answerer execution: the worker running it is killed (SIGKILL) in the middle, and so is
  the API server that accepted it; it completes on the others, its trace is complete, its
  citations verify, and the LM server saw no completed root call or sub-call twice.
* A runtime execution whose steps alternate between the two API servers completes, its
  variables surviving every change of server (restored from the sealed snapshot).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from rlmx.dev import MockLLMServer
from service_support import wait_for

MODELS = {"root": "openai:root", "sub": "openai:sub"}


class Cluster:
    """Processes sharing one PostgreSQL database and one S3 bucket, each with its own home."""

    def __init__(self, tmp: Path, env: dict[str, str]):
        self.tmp, self.env = tmp, env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        home = self.tmp / name
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlmx.cli", *args],
            env={**self.env, "RLMX_HOME": str(home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def api(self, name: str, port: int) -> str:
        self.start(name, "serve", "--no-worker", "--port", str(port))
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if self.procs[name].poll() is not None:
                raise AssertionError(f"{name} exited:\n{self.log(name)}")
            try:
                return httpx.get(f"{url}/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, f"{name} to answer", 60, 0.1)
        return url

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def world(tmp_path: Path, pg_url: str, s3_url: str, small_corpus: Path) -> Iterator[dict[str, Any]]:
    in_turn_2, release = threading.Event(), threading.Event()
    turn2_calls: list[int] = []

    def root(model: str, messages: list[dict[str, Any]]) -> str:
        turn = sum(1 for m in messages if m["role"] == "assistant") + 1
        if turn == 1:
            return "```repl\nhits = context.grep('Marshall Plan')\nr1 = llm_query('alpha question')\nprint(r1)\n```"
        if turn == 2:
            turn2_calls.append(1)
            if len(turn2_calls) == 1:  # the first worker is killed while it waits for this reply
                in_turn_2.set()
                release.wait(120)
            return "```repl\nr2 = llm_query('beta question')\nprint(r2)\n```"
        return "```repl\nd = context[0]\nFINAL(d[0:47] + ' / ' + r1 + ' | ' + r2)\n```"

    def sub(model: str, messages: list[dict[str, Any]]) -> str:
        return f"ANSWER({messages[-1]['content']})"

    with MockLLMServer(scripts={"root": root, "sub": sub}) as srv:
        env = {
            **os.environ,
            "RLMX_DATABASE_URL": pg_url,
            "RLMX_BLOB_URL": s3_url,
            "OPENAI_BASE_URL": srv.base_url,
            "OPENAI_API_KEY": "test",
            "RLMX_SERVICE_MODELS": "openai:root,openai:sub",
            "RLMX_ALLOWED_PATHS": str(small_corpus),
            "RLMX_LEASE_SECONDS": "2",
            "RLMX_POLL_SECONDS": "0.1",
            "RLMX_EVENTS_POLL_SECONDS": "0.1",
        }
        cluster = Cluster(tmp_path, env)
        try:
            key = subprocess.run(
                [sys.executable, "-m", "rlmx.cli", "keys", "create", "--tenant", "acme"],
                env={**env, "RLMX_HOME": str(tmp_path / "admin")},
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            urls = [cluster.api("api1", _free_port()), cluster.api("api2", _free_port())]
            cluster.start("worker1", "worker", "--concurrency", "2")
            cluster.start("worker2", "worker", "--concurrency", "2")
            yield {
                "cluster": cluster,
                "urls": urls,
                "headers": {"Authorization": f"Bearer {key}"},
                "srv": srv,
                "in_turn_2": in_turn_2,
                "release": release,
                "corpus": small_corpus,
            }
        finally:
            release.set()
            cluster.stop_all()


def _session(url: str, headers: dict[str, str], corpus: Path, other: str) -> str:
    r = httpx.post(f"{url}/v1/sessions", json={"docs": [{"path": str(corpus)}]}, headers=headers, timeout=30)
    assert r.status_code == 202, r.text
    sid = str(r.json()["session_id"])
    wait_for(
        lambda: httpx.get(f"{other}/v1/sessions/{sid}", headers=headers, timeout=10).json()["status"] == "READY",
        "the session (ingested by a worker, read through the other server)",
    )
    return sid


def test_runtime_steps_alternate_between_api_servers(world: dict[str, Any]) -> None:
    (a, b), h = world["urls"], world["headers"]
    sid = _session(a, h, world["corpus"], b)
    r = httpx.post(f"{a}/v1/sessions/{sid}/executions/runtime", json={"models": MODELS}, headers=h, timeout=60)
    assert r.status_code == 201, r.text
    eid = r.json()["execution_id"]
    codes = [
        "n = 0\nseen = []",
        "n += 1\nseen.append(len(context))",
        "n += 1\nhits = context.grep('Marshall Plan')\nseen.append(len(hits))",
        "n += 1\nd = context[0]\nquote = d[0:47]\nprint(n, seen, quote)",
        "FINAL(quote)",
    ]
    for i, code in enumerate(codes):
        url = (b, a)[i % 2]  # every step on the server that did not serve the previous one
        step = httpx.post(
            f"{url}/v1/executions/{eid}/steps?include=stdout", json={"code": code}, headers=h, timeout=120
        ).json()
        assert step["success"], step
        if i == 3:
            assert step["stdout"].startswith("3 [3, ")  # the variables came across every change of server
    assert step["status"] == "COMPLETED" and step["answer"] == "The Marshall Plan rebuilt Europe after the war."
    assert step["citations"]
    v = httpx.post(f"{a}/v1/citations/verify", json={"citations": step["citations"]}, headers=h, timeout=30).json()
    assert all(c["ok"] for c in v["results"]), v
    trace = httpx.get(f"{b}/v1/executions/{eid}/trace", headers=h, timeout=30).json()
    assert [t["turn"] for t in trace["turns"]] == [1, 2, 3, 4, 5]


def test_killed_worker_and_api_server_lose_nothing(world: dict[str, Any]) -> None:
    cluster: Cluster = world["cluster"]
    (a, b), h, srv = world["urls"], world["headers"], world["srv"]
    sid = _session(a, h, world["corpus"], b)
    r = httpx.post(
        f"{a}/v1/sessions/{sid}/executions",
        json={"question": "Combine both answers.", "models": MODELS},
        headers=h,
        timeout=30,
    )
    assert r.status_code == 202, r.text
    eid = r.json()["execution_id"]
    assert world["in_turn_2"].wait(120), cluster.log("worker1") + cluster.log("worker2")
    # the worker running it: its name (host:pid:random) is in the job's lease owner
    running = [n for n in ("worker1", "worker2") if f"runs answerer job {eid}" in cluster.log(n)]
    assert len(running) == 1, running
    turns = httpx.get(f"{b}/v1/executions/{eid}", headers=h, timeout=30).json()["turns"]
    assert turns == 1  # turn 1 was committed before turn 2 began
    cluster.kill(running[0])  # SIGKILL: no clean-up; its heartbeats stop
    cluster.kill("api1")  # the API server that accepted the execution
    world["release"].set()

    def done() -> dict[str, Any] | None:
        e = httpx.get(f"{b}/v1/executions/{eid}", headers=h, timeout=30).json()
        return e if e["status"] != "RUNNING" else None

    e = wait_for(done, "the execution to finish on the other worker", 180)
    survivor = "worker2" if running[0] == "worker1" else "worker1"
    assert e["status"] == "COMPLETED", e.get("error") or cluster.log(survivor)
    assert e["answer"] == (
        "The Marshall Plan rebuilt Europe after the war. / ANSWER(alpha question) | ANSWER(beta question)"
    )
    assert f"runs answerer job {eid}" in cluster.log(survivor)
    v = httpx.post(f"{b}/v1/citations/verify", json={"citations": e["citations"]}, headers=h, timeout=30).json()
    assert e["citations"] and all(c["ok"] for c in v["results"]), v
    trace = httpx.get(f"{b}/v1/executions/{eid}/trace", headers=h, timeout=30).json()
    assert [t["turn"] for t in trace["turns"]] == [1, 2, 3]
    assert [s["id"] for s in trace["subcalls"]] == ["t1.1", "t2.1"]
    # the LM server's log: no completed root call or sub-call was made twice
    subs = [req.messages[-1]["content"] for req in srv.requests if req.model == "sub"]
    assert subs.count("alpha question") == 1 and subs.count("beta question") == 1
    roots = [len(req.messages) for req in srv.requests if req.model == "root"]
    assert roots.count(2) == 1  # turn 1's root call (committed) was not repeated
    assert roots.count(4) == 2  # turn 2's: once unanswered (its worker was killed waiting), once redone
    assert roots.count(6) == 1
    events = httpx.get(f"{b}/v1/executions/{eid}/events?follow=false", headers=h, timeout=30).text
    assert "execution_resumed" in events and "event: final" in events
