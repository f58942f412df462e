"""Tenancy: every route, called with another tenant's ids, answers like a missing id (404)."""

from __future__ import annotations

from pathlib import Path

from service_support import auth, client, finished, make_service, ready_session


def _norm(r, ident: str) -> tuple[int, str]:
    return r.status_code, r.json()["detail"].replace(ident, "ID")


def test_another_tenants_ids_answer_404_on_every_route(tmp_path: Path, small_corpus: Path):
    svc = make_service(tmp_path / "home", allowed_paths=str(small_corpus))
    a, b = auth(svc.keys.create("tenant-a")[0]), auth(svc.keys.create("tenant-b")[0])
    with client(svc) as c:
        s = ready_session(c, a, [{"path": str(small_corpus)}])
        sid = s["session_id"]
        eid = c.post(f"/v1/sessions/{sid}/executions", json={"question": "What rebuilt Europe?"}, headers=a).json()[
            "execution_id"
        ]
        e = finished(c, a, eid)
        assert e["status"] == "COMPLETED" and e["citations"]
        rid = c.post(f"/v1/sessions/{sid}/executions/runtime", json={"sub_calls": "client"}, headers=a).json()[
            "execution_id"
        ]
        waiting = c.post(f"/v1/executions/{rid}/steps", json={"code": "v = llm_query('x')"}, headers=a).json()
        assert waiting["waiting"]
        doc_id = s["documents"][0]["doc_id"]

        calls = {
            ("GET", "/v1/sessions/{session_id}"): lambda i: c.get(f"/v1/sessions/{i}", headers=b),
            ("DELETE", "/v1/sessions/{session_id}"): lambda i: c.delete(f"/v1/sessions/{i}", headers=b),
            ("POST", "/v1/sessions/{session_id}/executions"): lambda i: c.post(
                f"/v1/sessions/{i}/executions", json={"question": "q"}, headers=b
            ),
            ("POST", "/v1/sessions/{session_id}/executions/runtime"): lambda i: c.post(
                f"/v1/sessions/{i}/executions/runtime", json={}, headers=b
            ),
            ("GET", "/v1/executions/{execution_id}"): lambda i: c.get(f"/v1/executions/{i}", headers=b),
            ("POST", "/v1/executions/{execution_id}/cancel"): lambda i: c.post(f"/v1/executions/{i}/cancel", headers=b),
            ("GET", "/v1/executions/{execution_id}/events"): lambda i: c.get(f"/v1/executions/{i}/events", headers=b),
            ("GET", "/v1/executions/{execution_id}/trace"): lambda i: c.get(f"/v1/executions/{i}/trace", headers=b),
            ("POST", "/v1/executions/{execution_id}/steps"): lambda i: c.post(
                f"/v1/executions/{i}/steps", json={"code": "print(v)"}, headers=b
            ),
            ("POST", "/v1/executions/{execution_id}/tools/resolve"): lambda i: c.post(
                f"/v1/executions/{i}/tools/resolve", json={"results": [{"id": "t1.1", "value": "stolen"}]}, headers=b
            ),
        }
        ids = {
            "/v1/sessions/{session_id}": [sid],
            "/v1/sessions/{session_id}/executions": [sid],
            "/v1/sessions/{session_id}/executions/runtime": [sid],
            "/v1/executions/{execution_id}": [eid, rid],
        }
        for (method, path), call in calls.items():
            key = path if path in ids else "/v1/executions/{execution_id}"
            for ident in ids[key]:
                missing = ident[:4] + "0" * (len(ident) - 4)
                got, expected = _norm(call(ident), ident), _norm(call(missing), missing)
                assert got == expected and got[0] == 404, (method, path, ident, got)

        # spans: by another tenant's document id, or by its session
        r = c.post("/v1/spans/get", json={"doc_id": doc_id, "start": 0, "end": 5}, headers=b)
        r0 = c.post("/v1/spans/get", json={"doc_id": "doc_00000000000000000000", "start": 0, "end": 5}, headers=b)
        assert _norm(r, doc_id) == _norm(r0, "doc_00000000000000000000") and r.status_code == 404
        r = c.post("/v1/spans/get", json={"session_id": sid, "doc_index": 0, "start": 0, "end": 5}, headers=b)
        assert r.status_code == 404
        # citations: another tenant's are unknown documents, like invented ones
        v = c.post("/v1/citations/verify", json={"citations": e["citations"]}, headers=b).json()
        assert not v["all_ok"] and {x["reason"] for x in v["results"]} == {"unknown document"}
        fake = {**e["citations"][0], "doc_id": "doc_00000000000000000000"}
        v0 = c.post("/v1/citations/verify", json={"citations": [fake]}, headers=b).json()
        assert v0["results"][0]["reason"] == "unknown document"
        assert c.get("/v1/sessions", headers=b).json() == {"sessions": []}

        # every /v1 route was tried
        routes = {
            (m, r.path)  # type: ignore[attr-defined]
            for r in c.app.routes  # type: ignore[attr-defined]
            if getattr(r, "path", "").startswith("/v1/")
            for m in r.methods  # type: ignore[attr-defined]
        }
        tried = set(calls) | {
            ("POST", "/v1/sessions"),
            ("GET", "/v1/sessions"),
            ("POST", "/v1/spans/get"),
            ("POST", "/v1/citations/verify"),
        }
        assert routes <= tried, routes - tried

        # nothing of tenant a was touched
        assert c.get(f"/v1/sessions/{sid}", headers=a).json()["status"] == "READY"
        step = c.post(
            f"/v1/executions/{rid}/tools/resolve", json={"results": [{"id": "t1.1", "value": "mine"}]}, headers=a
        ).json()
        assert step["success"] and c.get(f"/v1/executions/{rid}", headers=a).json()["status"] == "RUNNING"
        assert c.post("/v1/citations/verify", json={"citations": e["citations"]}, headers=a).json()["all_ok"]
    svc.close()
