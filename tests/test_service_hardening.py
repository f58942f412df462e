"""Regression tests of the service's review findings: folder walks that leave the allowed
folder, malformed input answered 500, a worker that lost its lease overwriting records,
expired sessions still serving documents, unbounded verify, the pepper creation race,
RLMX_HOME under an allowed path, orphaned MCP jobs, unbounded runtime REPLs."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from rlmx.dev import MockLLMServer
from rlmx.errors import ConfigError
from rlmx.service import core, spans
from rlmx.service.app import create_app
from rlmx.service.auth import load_pepper
from rlmx.service.settings import ServiceSettings
from rlmx.service.worker import Worker
from rlmx.store import schema as t
from rlmx.store.base import ExecutionRecord, JobRecord, utcnow
from service_support import auth, client, make_service, ready_session, wait_for


def _ready(svc: core.Service, tenant: str, path: Path, **kw: Any) -> str:
    sid = svc.create_session(tenant, [{"source_name": "c", "path": str(path)}], queue=False, **kw).session_id
    svc.ingest_session(sid)
    return sid


# --- 1. a folder's walk stays inside the folder ---------------------------------------------------
def test_folder_symlinks_out_of_the_allowed_folder_are_not_ingested(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("OUTSIDE SECRET launch code 0000.\n")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "ok.txt").write_text("The Marshall Plan rebuilt Europe.\n")
    os.symlink(outside / "secret.txt", allowed / "escape.txt")
    os.symlink(outside, allowed / "escape_dir")
    os.mkfifo(allowed / "pipe.txt")
    svc = make_service(tmp_path / "home", allowed_paths=str(allowed))
    k = auth(svc.keys.create("acme")[0])
    with client(svc) as c:
        s = ready_session(c, k, [{"path": str(allowed)}])
        assert s["status"] == "READY" and s["n_documents"] == 1
        by_name = {Path(d["path"]).name: d for d in s["documents"]}
        assert by_name["ok.txt"]["status"] == "READY"
        for name in ("escape.txt", "escape_dir"):
            assert by_name[name]["status"] == "FAILED" and "outside the folder" in by_name[name]["error"]
        assert by_name["pipe.txt"]["status"] == "FAILED" and "not a regular file" in by_name["pipe.txt"]["error"]
        doc = by_name["ok.txt"]["doc_id"]
        r = c.post(
            "/v1/spans/get", json={"session_id": s["session_id"], "doc_index": 0, "start": 0, "end": 10}, headers=k
        )
        assert r.json()["span"]["doc_id"] == doc
        # the secret was never stored as a document of this tenant
        trace = svc.meta.get_corpus(s["corpus_id"])
        assert all("SECRET" not in d.name for d in trace.documents) and len(trace.documents) == 1
    svc.close()


# --- 2. malformed input is a 4xx, never a 500 -------------------------------------------------------
def test_malformed_bodies_and_headers_are_4xx_on_every_json_route(svc, key, small_corpus: Path):
    sid = _ready(svc, "acme", small_corpus)
    app = create_app(svc, worker=False)
    deep = b"[" * 200_000 + b"]" * 200_000
    nested_900 = b'{"a":' * 900 + b"1" + b"}" * 900
    nested_70 = b'{"a":' * 70 + b"1" + b"}" * 70

    def field(name: str, value: bytes, extra: bytes = b"") -> bytes:
        return b'{"' + name.encode() + b'":' + value + extra + b"}"

    with TestClient(app, raise_server_exceptions=False) as c:
        rid = c.post(f"/v1/sessions/{sid}/executions/runtime", json={}, headers=key).json()["execution_id"]
        routes = {
            "/v1/sessions": [
                field("options", nested_900, b',"docs":[{"path":"x"}]'),
                field("options", nested_70, b',"docs":[{"path":"' + str(small_corpus).encode() + b'"}]'),
                b'{"docs":[{"path":"' + str(small_corpus).encode() + b'"}],"options":{"x":NaN}}',
                b'{"docs":[{"path":"' + str(small_corpus).encode() + b'"}],"options":{"x":{"\\udfff":1}}}',
            ],
            f"/v1/sessions/{sid}/executions": [
                field("output_schema", nested_900, b',"question":"q"'),
                field("output_schema", nested_70, b',"question":"q"'),
                b'{"question":"q","output_schema":{"type":"object","x":Infinity}}',
                b'{"question":NaN}',
                b'{"question":"q","output_schema":{"\\ud800":{}}}',
                b'{"question":"q","budgets":{"max_cost_usd":NaN,"max_turns":Infinity}}',
            ],
            f"/v1/sessions/{sid}/executions/runtime": [
                field("output_schema", nested_900),
                field("output_schema", nested_70),
                b'{"budgets":{"max_wall_seconds":-Infinity}}',
            ],
            "/v1/spans/get": [field("start", b"9" * 5000, b',"end":1,"doc_id":"x"')],
            "/v1/citations/verify": [field("citations", b"[" + nested_900 + b"]")],
            f"/v1/executions/{rid}/steps": [field("code", nested_900)],
            f"/v1/executions/{rid}/tools/resolve": [field("results", b"[" + nested_900 + b"]")],
            "/v1/executions/exe_nope/cancel": [nested_900],  # no body expected: 404
        }
        for route, bodies in routes.items():
            for body in [deep, b"\xff\xfe", b"{", *bodies]:
                r = c.post(route, content=body, headers={**key, "content-type": "application/json"})
                assert 400 <= r.status_code < 500, (route, body[:60], r.status_code, r.text[:200])
        for options in ['{"a":' * 990 + "1" + "}" * 990, '{"a": NaN}', '{"\\ud800": 1}', "[1]"]:
            r = c.post(
                "/v1/sessions", files=[("files", ("a.txt", b"x", "text/plain"))], data={"options": options}, headers=key
            )
            assert r.status_code == 400 and "options" in r.json()["detail"], (options[:20], r.text[:200])
        # the runtime execution still works after all that
        assert c.post(f"/v1/executions/{rid}/steps", json={"code": "print(1)"}, headers=key).json()["success"]
        for last in ["9" * 5000, "12abc", "\xb2".encode("latin-1"), "-1", ""]:
            r = c.get(f"/v1/executions/{rid}/events?follow=false", headers={**key, "last-event-id": last})
            assert r.status_code == 200 and "id: 1\r\n" in r.text, (last, r.text[:200])  # from the start
        r = c.get(f"/v1/executions/{rid}/events?follow=false", headers={**key, "last-event-id": "1"})
        assert r.status_code == 200 and "id: 1\r\n" not in r.text


# --- 3. a worker that lost its lease writes nothing -------------------------------------------------
def test_store_fencing_and_database_time_leases(tmp_path: Path):
    svc = make_service(tmp_path / "home")
    meta = svc.meta
    meta.enqueue_job(JobRecord(job_id="j1", kind="answerer", ref_id="e1"))
    meta.put_execution(ExecutionRecord(execution_id="e1", corpus_id="c", question="q", root_id="e1"))
    a = meta.claim_job("A", 30)
    assert a is not None and a.attempts == 1 and meta.claim_job("B", 30) is None
    lost: list[int] = []
    fenced = meta.fenced("j1", "A", a.attempts, lambda: lost.append(1))
    rec = meta.get_execution("e1")
    rec.answer = "by A"
    fenced.put_execution(rec)
    assert meta.get_execution("e1").answer == "by A" and not lost and not fenced.lease_lost
    # A's lease expires (by the database's clock) and B claims the job
    with meta.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(update(t.jobs).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    b = meta.claim_job("B", 30)
    assert b is not None and b.attempts == 2 and b.lease_expires_at > utcnow() + timedelta(seconds=20)
    rec.status, rec.answer = "CANCELLED", None
    fenced.put_execution(rec)  # A's late write: dropped
    fenced.add_event("e1", "final", {"status": "CANCELLED"})
    assert meta.get_execution("e1").status == "RUNNING" and meta.get_execution("e1").answer == "by A"
    assert meta.get_events("e1") == [] and lost == [1] and fenced.lease_lost
    assert not meta.renew_lease("j1", "A", 30, attempt=1) and not meta.finish_job("j1", "A", attempt=1)
    assert not meta.release_job("j1", "A") and meta.holds_lease("j1", "B", 2)
    assert not meta.holds_lease("j1", "B", 1)  # the same worker under an older claim
    assert meta.renew_lease("j1", "B", 30, attempt=2) and meta.finish_job("j1", "B", attempt=2)
    svc.close()


def _on_lost_lease() -> threading.Event:
    """An event set when a worker or the MCP server logs that it lost a lease (the warning
    is logged on the event loop right before the run is cancelled, in the same step). The
    handler is removed by :func:`_stop_watching`."""
    seen = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            msg = record.getMessage()
            if " lost job " in msg or " lost the lease of " in msg:
                seen.set()

    handler = Watch(logging.WARNING)
    for name in ("rlmx.queue", "rlmx.worker"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.WARNING:
            logger.setLevel(logging.WARNING)
    seen.handler = handler  # type: ignore[attr-defined]
    return seen


def _stop_watching(seen: threading.Event) -> None:
    for name in ("rlmx.queue", "rlmx.worker"):
        logging.getLogger(name).removeHandler(seen.handler)  # type: ignore[attr-defined]


def test_a_worker_that_lost_its_lease_does_not_overwrite_the_new_owners_record(
    tmp_path: Path, small_corpus: Path, monkeypatch: pytest.MonkeyPatch
):
    box: dict[str, Any] = {}
    stolen = threading.Event()
    answered = threading.Event()  # the held reply went out (A may have stopped before it)
    noticed = _on_lost_lease()

    def root(model: str, messages: list[dict]) -> str:
        turn = sum(1 for m in messages if m["role"] == "assistant") + 1
        if turn == 2 and not stolen.is_set():
            # another worker takes the job over (as after a missed heartbeat) while A waits here
            with box["svc"].meta.engine.begin() as conn:
                conn.execute(
                    update(t.jobs)
                    .where(t.jobs.c.job_id == box["eid"])
                    .values(
                        lease_owner="B", attempts=t.jobs.c.attempts + 1, lease_expires_at=utcnow() + timedelta(hours=1)
                    )
                )
            stolen.set()
            # hold this reply until A's heartbeat notices and cancels its run
            box["noticed"] = noticed.wait(60)
            answered.set()
        return f"```repl\nprint('turn {turn}')\n```"

    with MockLLMServer(scripts={"root": root}) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        svc = make_service(tmp_path / "h", allowed_paths=str(small_corpus), service_models="openai:root")
        box["svc"] = svc
        sid = _ready(svc, "acme", small_corpus)
        eid = svc.create_execution(
            "acme", sid, {"question": "loop", "models": {"root": "openai:root", "sub": "openai:root"}}
        )["execution_id"]
        box["eid"] = eid
        try:
            asyncio.run(Worker(svc, worker_id="A", lease_s=0.3, poll_s=0.05).run(until_idle=True))
        finally:
            _stop_watching(noticed)
        assert stolen.is_set() and answered.wait(60) and box["noticed"], "A's heartbeat never noticed the lost lease"
        rec = svc.meta.get_execution(eid)
        assert rec.status == "RUNNING" and rec.error is None and rec.finished_at is None  # not A's CANCELLED
        assert len(svc.meta.get_turns(eid)) == 1
        assert "final" not in [e["kind"] for e in svc.meta.get_events(eid)]
        job = svc.meta.get_job(eid)
        assert job is not None and job.lease_owner == "B" and job.state == "RUNNING" and job.attempts == 2
        svc.close()


# --- 4. expired sessions serve nothing -------------------------------------------------------------
def test_an_expired_session_serves_no_spans_or_citations(svc, key, small_corpus: Path):
    sid = _ready(svc, "acme", small_corpus, ttl_minutes=5)
    doc = svc.meta.get_session(sid).documents[0]
    with client(svc, worker=False) as c:
        r = c.post("/v1/spans/get", json={"doc_id": doc["doc_id"], "start": 0, "end": 10}, headers=key)
        assert r.status_code == 200
        cite = r.json()["span"]
        rec = svc.meta.get_session(sid)
        rec.expires_at = utcnow() - timedelta(minutes=1)
        svc.meta.put_session(rec)
        r = c.post("/v1/spans/get", json={"doc_id": doc["doc_id"], "start": 0, "end": 10}, headers=key)
        assert r.status_code == 404
        v = c.post("/v1/citations/verify", json={"citations": [cite]}, headers=key).json()
        assert not v["all_ok"] and v["results"][0]["reason"] == "unknown document"


# --- 5. verify is bounded --------------------------------------------------------------------------
def test_verify_caps_citations_and_characters(svc, key, small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    sid = _ready(svc, "acme", small_corpus)
    with client(svc, worker=False) as c:
        cite = c.post(
            "/v1/spans/get", json={"session_id": sid, "doc_index": 0, "start": 0, "end": 40}, headers=key
        ).json()["span"]
        ok = c.post("/v1/citations/verify", json={"citations": [cite] * 3}, headers=key).json()
        assert ok["all_ok"] and len(ok["results"]) == 3
        r = c.post("/v1/citations/verify", json={"citations": [cite] * (core.MAX_VERIFY_CITATIONS + 1)}, headers=key)
        assert r.status_code == 422
        monkeypatch.setattr(spans, "MAX_VERIFY_CHARS", 100)
        r = c.post("/v1/citations/verify", json={"citations": [cite] * 3}, headers=key)
        assert r.status_code == 413 and "120 characters" in r.json()["detail"]
        # offsets outside the document cost nothing: reported, not refused
        far = {**cite, "start": 10**30, "end": 10**31}
        r = c.post("/v1/citations/verify", json={"citations": [far] * 3}, headers=key)
        assert r.status_code == 200 and not r.json()["all_ok"]


# --- 6. one pepper, never an empty one --------------------------------------------------------------
def test_processes_starting_together_agree_on_one_pepper(tmp_path: Path):
    settings = ServiceSettings(home=tmp_path / "home")
    got: list[bytes] = []
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait()
        got.append(load_pepper(settings))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(got) == 8 and len(set(got)) == 1 and len(got[0]) >= 40
    path = tmp_path / "home" / "key_pepper"
    assert path.read_bytes().strip() == got[0] and (path.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["key_pepper"]  # no temporary file left
    path.write_bytes(b"")
    with pytest.raises(ConfigError, match="empty"):
        load_pepper(settings)


# --- 7. the store's home is never readable as a session -----------------------------------------------
def test_paths_in_or_around_the_store_home_are_refused(tmp_path: Path, small_corpus: Path):
    home = tmp_path / "srv" / "home"
    docs = tmp_path / "srv" / "docs"
    docs.mkdir(parents=True)
    (docs / "a.txt").write_text("hello\n")
    svc = make_service(home, allowed_paths=str(tmp_path / "srv"))
    k = auth(svc.keys.create("acme")[0])
    (home / "uploads" / "ses_other").mkdir(parents=True)
    (home / "uploads" / "ses_other" / "theirs.txt").write_text("another tenant's upload\n")
    with client(svc, worker=False) as c:
        for p in [home / "uploads" / "ses_other" / "theirs.txt", home / "key_pepper", home, tmp_path / "srv"]:
            r = c.post("/v1/sessions", json={"docs": [{"path": str(p)}]}, headers=k)
            assert r.status_code == 403 and "RLMX_HOME" in r.json()["detail"], (p, r.text)
        assert c.post("/v1/sessions", json={"docs": [{"path": str(docs)}]}, headers=k).status_code == 202
    svc.close()


# --- 9. runtime REPLs are bounded and reaped without a worker ----------------------------------------
def test_runtime_repls_are_capped_per_tenant_and_overall(tmp_path: Path, small_corpus: Path):
    """Open runtime executions are capped per tenant (across servers: counted in the store);
    a server caches at most RLMX_MAX_RUNTIMES REPLs and stops the least recently used idle one
    to make room — it comes back from its snapshot on its next step."""
    svc = make_service(tmp_path / "home", allowed_paths=str(small_corpus), max_runtimes=3, max_runtimes_per_tenant=2)
    ka, kb = auth(svc.keys.create("a")[0]), auth(svc.keys.create("b")[0])
    sa, sb = _ready(svc, "a", small_corpus), _ready(svc, "b", small_corpus)
    with client(svc, worker=False) as c:
        start = lambda s, k: c.post(f"/v1/sessions/{s}/executions/runtime", json={}, headers=k)  # noqa: E731
        a1 = start(sa, ka).json()["execution_id"]
        assert c.post(f"/v1/executions/{a1}/steps", json={"code": "x = 41"}, headers=ka).json()["success"]
        a2 = start(sa, ka).json()["execution_id"]
        r = start(sa, ka)
        assert r.status_code == 429 and "RLMX_MAX_RUNTIMES_PER_TENANT" in r.json()["detail"]
        assert int(r.headers["retry-after"]) >= 1
        b1 = start(sb, kb).json()["execution_id"]
        b2 = start(sb, kb)  # the server is at RLMX_MAX_RUNTIMES: the least recently used idle REPL goes
        assert b2.status_code == 201, b2.text
        assert len(svc.runtimes) == 3 and a1 not in svc.runtimes and {a2, b1} <= set(svc.runtimes)
        step = c.post(f"/v1/executions/{a1}/steps?include=stdout", json={"code": "print(x + 1)"}, headers=ka).json()
        assert step["stdout"] == "42\n"  # a1 came back (from its snapshot) when it was used again
        assert len(svc.runtimes) == 3
        assert c.post(f"/v1/executions/{a1}/cancel", headers=ka).json()["status"] == "CANCELLED"
        assert start(sa, ka).status_code == 201  # the tenant's cap counts open executions only
    assert svc.runtimes == {}
    svc.close()


def test_idle_runtime_repls_are_reaped_by_a_server_without_a_worker(tmp_path: Path, small_corpus: Path):
    svc = make_service(tmp_path / "home", allowed_paths=str(small_corpus), runtime_idle_seconds=0.3)
    k = auth(svc.keys.create("a")[0])
    sid = _ready(svc, "a", small_corpus)
    with client(svc, worker=False) as c:
        eid = c.post(f"/v1/sessions/{sid}/executions/runtime", json={}, headers=k).json()["execution_id"]
        assert c.post(f"/v1/executions/{eid}/steps", json={"code": "x = 41"}, headers=k).json()["success"]
        wait_for(lambda: not svc.runtimes, "the idle REPL to be stopped", limit_s=30)
        step = c.post(f"/v1/executions/{eid}/steps?include=stdout", json={"code": "print(x + 1)"}, headers=k).json()
        assert step["stdout"] == "42\n"  # restored by replay
    svc.close()


# --- 8. an MCP ask leaves no orphaned job --------------------------------------------------------------
def _mcp_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, srv: MockLLMServer, **settings: Any) -> Any:
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The Marshall Plan rebuilt Europe.\n")
    svc = make_service(tmp_path / "home", allowed_paths=str(docs), service_models="openai:root", **settings)
    return svc, _ready(svc, "local", docs)


def test_a_cancelled_mcp_ask_cancels_its_execution_and_finishes_its_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from mcp import Client

    from rlmx.service.mcp_server import build_mcp_server

    entered, gate = threading.Event(), threading.Event()

    def root(model: str, messages: list[dict]) -> str:
        entered.set()
        gate.wait(30)
        return "```repl\nprint('x')\n```"

    with MockLLMServer(scripts={"root": root}) as srv:
        svc, sid = _mcp_world(tmp_path, monkeypatch, srv)

        async def run() -> None:
            async with Client(build_mcp_server(svc, "local", transport="http")) as c:
                call = asyncio.create_task(
                    c.call_tool("ask", {"session_id": sid, "question": "q", "model": "openai:root"})
                )
                await asyncio.to_thread(entered.wait, 30)
                call.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await call
                gate.set()
                eid = svc.meta.list_executions()[0].execution_id

                def ended() -> bool:
                    job = svc.meta.get_job(eid)
                    return job is not None and job.state == "DONE"

                await asyncio.to_thread(wait_for, ended, "the job to be finished")
                job = svc.meta.get_job(eid)
                assert job is not None and job.cancel_requested and "cancelled" in (job.error or "")
                assert svc.meta.get_execution(eid).status == "CANCELLED"
                assert svc.meta.get_events(eid)[-1]["kind"] == "final"

        asyncio.run(run())
        svc.close()


def test_an_mcp_ask_that_lost_its_lease_stops_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from mcp import Client

    from rlmx.service.mcp_server import build_mcp_server

    box: dict[str, Any] = {}
    noticed = _on_lost_lease()

    def root(model: str, messages: list[dict]) -> str:
        if "stolen" not in box:
            eid = box["svc"].meta.list_executions()[0].execution_id
            with box["svc"].meta.engine.begin() as conn:
                conn.execute(
                    update(t.jobs)
                    .where(t.jobs.c.job_id == eid)
                    .values(lease_owner="B", attempts=2, lease_expires_at=utcnow() + timedelta(hours=1))
                )
            box["stolen"] = eid
            box["noticed"] = noticed.wait(60)  # hold the reply until the heartbeat notices
        return "```repl\nprint('x')\n```"

    with MockLLMServer(scripts={"root": root}) as srv:
        svc, sid = _mcp_world(tmp_path, monkeypatch, srv, lease_seconds=0.3)
        box["svc"] = svc

        async def run() -> None:
            async with Client(build_mcp_server(svc, "local", transport="http")) as c:
                r = await c.call_tool("ask", {"session_id": sid, "question": "q", "model": "openai:root"})
                assert r.is_error and "taken over by another worker" in r.content[0].text
                eid = box["stolen"]
                assert svc.meta.get_execution(eid).status == "RUNNING"  # the new owner's record, untouched
                job = svc.meta.get_job(eid)
                assert job is not None and job.state == "RUNNING" and job.lease_owner == "B"

        try:
            asyncio.run(run())
        finally:
            _stop_watching(noticed)
        assert box["noticed"], "the MCP server's heartbeat never noticed the lost lease"
        svc.close()
