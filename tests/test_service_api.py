"""The HTTP API through the app (in-process worker, real REPL processes, real store)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from rlmx.dev import MockLLMServer
from rlmx.types import span_checksum
from service_support import auth, client, finished, make_service, ready_session, wait_for


def test_health_needs_no_key_and_everything_else_does(svc, key):
    with client(svc, worker=False) as c:
        assert c.get("/health/live").json() == {"status": "ok"}
        assert c.get("/health/ready").json() == {"status": "ok"}
        assert c.get("/openapi.json").status_code == 200
        r = c.get("/v1/sessions")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.get("/v1/sessions", headers=auth("rlmx_not-a-key")).status_code == 401
        assert c.get("/v1/sessions", headers={"Authorization": "Basic abc"}).status_code == 401
        assert c.get("/v1/sessions", headers=key).json() == {"sessions": []}
        k2, rec = svc.keys.create("acme", "temp")
        assert c.get("/v1/sessions", headers=auth(k2)).status_code == 200
        assert svc.keys.revoke(rec.key_id)
        assert c.get("/v1/sessions", headers=auth(k2)).status_code == 401


def test_keys_are_stored_only_as_hmacs(svc, tmp_path: Path):
    k, rec = svc.keys.create("t1")
    assert k.startswith("rlmx_") and rec.key_hmac != k and k not in rec.key_hmac
    raw = (tmp_path / "home" / "rlmx.sqlite").read_bytes()
    assert k.encode() not in raw
    pepper = tmp_path / "home" / "key_pepper"
    assert pepper.stat().st_mode & 0o777 == 0o600


def test_session_paths_must_be_allowed(svc, key, tmp_path: Path, small_corpus: Path):
    outside = tmp_path / "secret.txt"
    outside.write_text("top secret", encoding="utf-8")
    with client(svc, worker=False) as c:
        r = c.post("/v1/sessions", json={"docs": [{"path": str(outside)}]}, headers=key)
        assert r.status_code == 403 and "RLMX_ALLOWED_PATHS" in r.json()["detail"]
        r = c.post(
            "/v1/sessions", json={"docs": [{"path": str(small_corpus / ".." / ".." / "secret.txt")}]}, headers=key
        )
        assert r.status_code == 403
        link = small_corpus / "link.txt"
        link.symlink_to(outside)
        assert c.post("/v1/sessions", json={"docs": [{"path": str(link)}]}, headers=key).status_code == 403
        link.unlink()
        r = c.post("/v1/sessions", json={"docs": [{"path": str(small_corpus / "nope.txt")}]}, headers=key)
        assert r.status_code == 400 and "does not exist" in r.json()["detail"]
        assert c.post("/v1/sessions", content=b"{not json", headers=key).status_code == 400
        assert c.post("/v1/sessions", json={"docs": []}, headers=key).status_code == 422
        r = c.post("/v1/sessions", content=b"x", headers={**key, "content-type": "text/plain"})
        assert r.status_code == 415


def test_allowed_root_reached_through_a_symlink(tmp_path: Path, small_corpus: Path):
    """A root configured through a symlinked folder (e.g. ../shared -> /data/shared) allows the
    paths under it, written either way; a link inside it that escapes stays refused."""
    linked = tmp_path / "linked"
    linked.symlink_to(small_corpus)
    service = make_service(tmp_path / "h2", allowed_paths=str(linked))
    assert service.check_path(str(linked / "alpha.txt")) == (small_corpus / "alpha.txt").resolve()
    assert service.check_path(str(small_corpus / "alpha.txt")) == (small_corpus / "alpha.txt").resolve()
    outside = tmp_path / "secret.txt"
    outside.write_text("x", encoding="utf-8")
    (small_corpus / "escape.txt").symlink_to(outside)
    with pytest.raises(Exception, match="RLMX_ALLOWED_PATHS"):
        service.check_path(str(linked / "escape.txt"))


def test_answerer_execution_end_to_end(svc, key, small_corpus: Path):
    with client(svc) as c:
        s = ready_session(c, key, [{"source_name": "corpus", "path": str(small_corpus)}])
        assert s["status"] == "READY" and s["n_documents"] == 3
        assert {d["name"] for d in s["documents"]} == {"alpha.txt", "beta.md", "gamma.txt"}
        assert all(d["source_name"] == "corpus" and d["status"] == "READY" for d in s["documents"])
        r = c.post(
            f"/v1/sessions/{s['session_id']}/executions",
            json={"question": "What rebuilt Europe after the war?", "models": {"root": "baseline"}},
            headers=key,
        )
        assert r.status_code == 202 and r.json()["status"] == "RUNNING"
        eid = r.json()["execution_id"]
        e = finished(c, key, eid)
        assert e["status"] == "COMPLETED", e
        assert "Marshall Plan" in e["answer"] and e["citations"]
        assert e["usage"]["turns"] == 2 and e["cost_usd"] == 0.0
        assert e["budgets"]["max_turns"] == 30 and e["budgets_consumed"]["max_turns"] == 2
        assert e["last_turn"]["turn"] == 2 and e["models"]["root"].startswith("baseline")
        # the citations verify; a tampered one does not
        v = c.post("/v1/citations/verify", json={"citations": e["citations"]}, headers=key).json()
        assert v["all_ok"] and len(v["results"]) == len(e["citations"])
        bad = {**e["citations"][0], "checksum": span_checksum("something else")}
        v = c.post("/v1/citations/verify", json={"citations": [bad]}, headers=key).json()
        assert not v["all_ok"] and "checksum" in v["results"][0]["reason"]
        # the span behind a citation, by doc id and by session + index
        cite = e["citations"][0]
        span = c.post(
            "/v1/spans/get", json={"doc_id": cite["doc_id"], "start": cite["start"], "end": cite["end"]}, headers=key
        ).json()
        assert span["text"] == cite["text"] and span["span"]["checksum"] == cite["checksum"]
        span = c.post(
            "/v1/spans/get", json={"session_id": s["session_id"], "doc_index": 0, "start": 4, "end": 17}, headers=key
        ).json()
        assert span["text"] == "Marshall Plan" and span["span"]["doc_name"] == "alpha.txt"
        r = c.post("/v1/spans/get", json={"doc_id": cite["doc_id"], "start": 5, "end": 10**9}, headers=key)
        assert r.status_code == 400
        # events: a finished execution's stream replays everything and ends with `final`
        ev = c.get(f"/v1/executions/{eid}/events", headers=key)
        kinds = [ln.split(": ", 1)[1] for ln in ev.text.splitlines() if ln.startswith("event: ")]
        assert kinds[0] == "execution_started" and kinds[-1] == "final"
        assert kinds.count("turn_started") == 2 and kinds.count("turn_finished") == 2
        final = json.loads([ln for ln in ev.text.splitlines() if ln.startswith("data: ")][-1][6:])
        assert final["status"] == "COMPLETED" and final["citations"] == e["citations"]
        ev = c.get(f"/v1/executions/{eid}/events", headers={**key, "Last-Event-ID": "2"})
        assert "id: 1\n" not in ev.text and "id: 3" in ev.text
        trace = c.get(f"/v1/executions/{eid}/trace", headers=key).json()
        assert [t["turn"] for t in trace["turns"]] == [1, 2] and trace["execution"]["status"] == "COMPLETED"
        # cancelling a finished execution changes nothing
        r = c.post(f"/v1/executions/{eid}/cancel", headers=key).json()
        assert r == {"execution_id": eid, "status": "COMPLETED", "cancel_requested": False}
        listed = c.get("/v1/sessions", headers=key).json()["sessions"]
        assert [x["session_id"] for x in listed] == [s["session_id"]]


def test_upload_session_and_delete(svc, key):
    files = [
        ("files", ("notes.txt", b"The treaty was signed in Geneva in 1949.\n", "text/plain")),
        ("files", ("../../evil name.md", b"# Title\n\nGeneva again.\n", "text/markdown")),
        ("files", ("empty.txt", b"", "text/plain")),
    ]
    with client(svc) as c:
        r = c.post("/v1/sessions", files=files, data={"ttl_minutes": "60"}, headers=key)
        assert r.status_code == 202, r.text
        sid = r.json()["session_id"]
        s = wait_for(lambda: (x := c.get(f"/v1/sessions/{sid}", headers=key).json())["status"] != "CREATING" and x, "s")
        assert s["status"] == "READY" and s["expires_at"]
        by_name = {d.get("name") or Path(d["path"]).name: d for d in s["documents"]}
        assert by_name["notes.txt"]["status"] == "READY" and by_name["evil name.md"]["status"] == "READY"
        assert by_name["empty.txt"]["status"] == "FAILED" and by_name["empty.txt"]["error"]
        assert by_name["notes.txt"]["path"] == "notes.txt"  # the file's name, not the server's path
        upload_dir = svc.store.home / "uploads" / sid
        assert (upload_dir / "notes.txt").is_file()
        assert c.delete(f"/v1/sessions/{sid}", headers=key).status_code == 204
        assert c.get(f"/v1/sessions/{sid}", headers=key).status_code == 404
        assert c.delete(f"/v1/sessions/{sid}", headers=key).status_code == 404
        assert not upload_dir.exists()
        r = c.post("/v1/sessions", files=[("other", ("a.txt", b"x", "text/plain"))], headers=key)
        assert r.status_code == 400


def test_bad_requests_are_4xx(svc, key, small_corpus: Path):
    with client(svc) as c:
        s = ready_session(c, key, [{"path": str(small_corpus / "alpha.txt"), "source_name": "Alpha"}])
        assert [d["name"] for d in s["documents"]] == ["Alpha"]
        sid = s["session_id"]
        url = f"/v1/sessions/{sid}/executions"
        r = c.post(url, json={"question": "q?", "models": {"root": "openai:gpt-5"}}, headers=key)
        assert r.status_code == 400 and "not offered" in r.json()["detail"]
        r = c.post(url, json={"question": "q?", "models": {"root": "scripted:/etc/passwd"}}, headers=key)
        assert r.status_code == 400
        r = c.post(url, json={"question": "q?", "output_schema": {"type": "array"}}, headers=key)
        assert r.status_code == 400
        assert c.post(url, json={"question": "   "}, headers=key).status_code == 400
        assert c.post(url, json={"question": "q", "budgets": {"max_turns": 0}}, headers=key).status_code == 422
        assert c.post(url, json={"question": "q", "extra": 1}, headers=key).status_code == 422
        assert c.post("/v1/sessions/ses_missing/executions", json={"question": "q"}, headers=key).status_code == 404
        assert c.get("/v1/executions/exe_missing", headers=key).status_code == 404
        assert c.post("/v1/executions/exe_missing/steps", json={"code": "1"}, headers=key).status_code == 404
        assert c.post("/v1/spans/get", json={"start": 0, "end": 1}, headers=key).status_code == 422  # schema: anyOf


def test_session_not_ready_is_409(svc, key, small_corpus: Path):
    with client(svc, worker=False) as c:  # nobody ingests
        r = c.post("/v1/sessions", json={"docs": [{"path": str(small_corpus)}]}, headers=key)
        sid = r.json()["session_id"]
        assert c.get(f"/v1/sessions/{sid}", headers=key).json()["status"] == "CREATING"
        r = c.post(f"/v1/sessions/{sid}/executions", json={"question": "q"}, headers=key)
        assert r.status_code == 409 and "READY" in r.json()["detail"]


def test_body_size_and_rate_limits(tmp_path: Path):
    svc = make_service(tmp_path / "h", max_request_bytes=2048, max_upload_bytes=4096, rate_limit_per_minute=3)
    k, _ = svc.keys.create("acme")
    with client(svc, worker=False) as c:
        big = {"docs": [{"path": "x" * 3000}]}
        assert c.post("/v1/sessions", json=big, headers=auth(k)).status_code == 413
        files = [("files", ("big.txt", b"y" * 5000, "text/plain"))]
        assert c.post("/v1/sessions", files=files, headers=auth(k)).status_code == 413

        def chunks():
            yield b'{"docs": [{"path": "'
            for _ in range(10):
                yield b"z" * 500
            yield b'"}]}'

        r = c.post("/v1/sessions", content=chunks(), headers={**auth(k), "content-type": "application/json"})
        assert r.status_code == 413
        codes = [c.get("/v1/sessions", headers=auth(k)).status_code for _ in range(3)]
        assert codes == [200, 200, 200]  # 413s are answered before the key is looked at
        r = c.get("/v1/sessions", headers=auth(k))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert c.get("/health/live").status_code == 200
    svc.close()


def test_runtime_mode_server_and_client_tools(svc, key, small_corpus: Path):
    with client(svc) as c:
        s = ready_session(c, key, [{"path": str(small_corpus)}])
        r = c.post(f"/v1/sessions/{s['session_id']}/executions/runtime", json={"question": "explore"}, headers=key)
        assert r.status_code == 201 and r.json()["sub_calls"] == "server"
        eid = r.json()["execution_id"]
        steps = f"/v1/executions/{eid}/steps?include=stdout,span_log"
        step = c.post(steps, json={"code": "x = 41\nprint(len(context))"}, headers=key).json()
        assert step["success"] and step["stdout"] == "3\n" and step["turn"] == 1 and step["variables"] == ["x"]
        step = c.post(f"/v1/executions/{eid}/steps", json={"code": "1/0"}, headers=key).json()
        assert step["success"] is False and "ZeroDivisionError" in step["error"]
        code = "doc = context.doc('alpha.txt')\nq = llm_query('Marshall Plan? ' + doc[0:60])\nprint(x + 1, q[:20])"
        step = c.post(steps, json={"code": code}, headers=key).json()
        assert step["success"] and step["stdout"].startswith("42 ") and step["span_log"][0]["kind"] == "read"
        code = "FINAL('The Marshall Plan rebuilt Europe after the war')"
        step = c.post(f"/v1/executions/{eid}/steps", json={"code": code}, headers=key).json()
        assert step["status"] == "COMPLETED" and step["final"]["kind"] == "FINAL"
        # the answer's citation is widened to the whole sentence it quotes
        assert [x["text"] for x in step["citations"]] == ["The Marshall Plan rebuilt Europe after the war."]
        assert c.post(f"/v1/executions/{eid}/steps", json={"code": "1"}, headers=key).status_code == 409
        e = c.get(f"/v1/executions/{eid}", headers=key).json()
        assert e["mode"] == "runtime" and e["status"] == "COMPLETED" and e["usage"]["sub_calls"] == 1
        assert c.post("/v1/citations/verify", json={"citations": e["citations"]}, headers=key).json()["all_ok"]
        trace = c.get(f"/v1/executions/{eid}/trace", headers=key).json()
        assert trace["turns"][0]["code"].startswith("x = 41") and len(trace["subcalls"]) == 1

        # client-resolved tool requests: the client acts as the sub-LM
        r = c.post(f"/v1/sessions/{s['session_id']}/executions/runtime", json={"sub_calls": "client"}, headers=key)
        eid = r.json()["execution_id"]
        code = "a = llm_query('first?')\nb = llm_query_batched(['p1', 'p2'])\nc = llm_query('third?')\nprint(a, b, c)"
        step = c.post(f"/v1/executions/{eid}/steps", json={"code": code}, headers=key).json()
        assert step["waiting"] and step["success"] is None
        assert step["tool_requests"] == [{"id": "t1.1", "kind": "llm_query", "prompt": "first?"}]
        assert c.post(f"/v1/executions/{eid}/steps", json={"code": "1"}, headers=key).status_code == 409
        bad = c.post(f"/v1/executions/{eid}/tools/resolve", json={"results": [{"id": "t9", "value": "x"}]}, headers=key)
        assert bad.status_code == 400
        step = c.post(
            f"/v1/executions/{eid}/tools/resolve", json={"results": [{"id": "t1.1", "value": "A"}]}, headers=key
        ).json()
        assert step["waiting"] and step["tool_requests"][0]["kind"] == "llm_query_batched"
        batch = step["tool_requests"][0]
        assert batch["prompts"] == ["p1", "p2"] and batch["subcall_ids"] == ["t1.2", "t1.3"]
        wrong = c.post(
            f"/v1/executions/{eid}/tools/resolve", json={"results": [{"id": batch["id"], "value": "one"}]}, headers=key
        )
        assert wrong.status_code == 400
        step = c.post(
            f"/v1/executions/{eid}/tools/resolve",
            json={"results": [{"id": batch["id"], "value": ["B1", "B2"]}]},
            headers=key,
        ).json()
        assert step["waiting"] and step["tool_requests"][0]["id"] == "t1.4"
        step = c.post(
            f"/v1/executions/{eid}/tools/resolve?include=stdout", json={"server_ids": ["*"]}, headers=key
        ).json()
        assert not step["waiting"] and step["success"] and step["stdout"].startswith("A ['B1', 'B2'] ")
        code = "d = llm_query('fails?')"
        step = c.post(f"/v1/executions/{eid}/steps", json={"code": code}, headers=key).json()
        step = c.post(
            f"/v1/executions/{eid}/tools/resolve", json={"results": [{"id": "t2.1", "error": "no idea"}]}, headers=key
        ).json()
        assert step["success"] is False and "no idea" in step["error"]
        subs = c.get(f"/v1/executions/{eid}/trace", headers=key).json()["subcalls"]
        assert [x["id"] for x in subs] == ["t1.1", "t1.2", "t1.3", "t1.4"]
        assert [x.get("resolved_by") for x in subs] == ["client", "client", "client", None]
        r = c.post(f"/v1/executions/{eid}/cancel", headers=key).json()
        assert r["status"] == "CANCELLED" and r["cancel_requested"]
        assert c.post(f"/v1/executions/{eid}/steps", json={"code": "1"}, headers=key).status_code == 409


def test_runtime_execution_is_restored_after_a_restart(tmp_path: Path, small_corpus: Path):
    home = tmp_path / "home"
    svc = make_service(home, allowed_paths=str(small_corpus))
    k, _ = svc.keys.create("acme")
    with client(svc) as c:
        s = ready_session(c, auth(k), [{"path": str(small_corpus)}])
        eid = c.post(f"/v1/sessions/{s['session_id']}/executions/runtime", json={}, headers=auth(k)).json()[
            "execution_id"
        ]
        code = "x = 20\nq = llm_query('Marshall Plan? ' + context[0][0:40])"
        assert c.post(f"/v1/executions/{eid}/steps", json={"code": code}, headers=auth(k)).json()["success"]
    svc.close()  # the serving process is gone with its REPL
    svc2 = make_service(home, allowed_paths=str(small_corpus))
    with client(svc2) as c:
        step = c.post(
            f"/v1/executions/{eid}/steps?include=stdout", json={"code": "print(x * 2, bool(q))"}, headers=auth(k)
        ).json()
        assert step["success"] and step["stdout"] == "40 True\n" and step["turn"] == 2
        trace = c.get(f"/v1/executions/{eid}/trace", headers=auth(k)).json()
        assert len(trace["subcalls"]) == 1  # the replay answered the sub-call from its record
    svc2.close()


def test_cancel_stops_at_the_next_turn_boundary(tmp_path: Path, small_corpus: Path, monkeypatch):
    box: dict[str, str] = {}
    root_calls: list[int] = []

    def root(model: str, messages: list[dict]) -> str:
        root_calls.append(1)
        if len(root_calls) == 2:  # cancel while turn 2 runs: it finishes, turn 3 never starts
            svc.meta.request_cancel(box["eid"])
        return f"```repl\nprint('turn {len(root_calls)}')\n```"

    with MockLLMServer(scripts={"root": root}) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        svc = make_service(tmp_path / "h", allowed_paths=str(small_corpus), service_models="openai:root")
        k, _ = svc.keys.create("acme")
        with client(svc, worker=False) as c:
            sid = svc.create_session("acme", [{"source_name": "c", "path": str(small_corpus)}], queue=False).session_id
            svc.ingest_session(sid)
            r = c.post(
                f"/v1/sessions/{sid}/executions",
                json={"question": "loop", "models": {"root": "openai:root", "sub": "openai:root"}},
                headers=auth(k),
            ).json()
            box["eid"] = r["execution_id"]
            # a queued execution is cancelled at once
            r2 = c.post(f"/v1/sessions/{sid}/executions", json={"question": "other"}, headers=auth(k)).json()
            assert (
                c.post(f"/v1/executions/{r2['execution_id']}/cancel", headers=auth(k)).json()["status"] == "CANCELLED"
            )
            import asyncio

            from rlmx.service.worker import Worker

            asyncio.run(Worker(svc, poll_s=0.05).run(until_idle=True))
            e = c.get(f"/v1/executions/{box['eid']}", headers=auth(k)).json()
            assert e["status"] == "CANCELLED" and e["turns"] == 2 and "turn 2" in (e["answer"] or "")
            assert len(root_calls) == 2
        svc.close()


def test_sse_follows_a_running_execution(svc, key, small_corpus: Path):
    with client(svc) as c:
        s = ready_session(c, key, [{"path": str(small_corpus)}])
        eid = c.post(
            f"/v1/sessions/{s['session_id']}/executions", json={"question": "What rebuilt Europe?"}, headers=key
        ).json()["execution_id"]
        seen: list[str] = []

        def follow() -> None:
            with c.stream("GET", f"/v1/executions/{eid}/events", headers=key) as r:
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        seen.append(line[7:])

        t = threading.Thread(target=follow)
        t.start()
        t.join(90)
        assert seen and seen[-1] == "final" and "turn_finished" in seen
