"""The service's answers to server faults and edge cases of its contract (issue 9, items
10-12): uploads show file names, not the server's paths; a server fault is a 502/503 with a
generic message and the detail in the log; behaviour agrees with the OpenAPI schema. Real
HTTP through FastAPI's TestClient on a real store."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from rlmx.service.core import Service
from service_support import client, make_service


@pytest.fixture
def svc(tmp_path: Path, small_corpus: Path):
    service = make_service(tmp_path / "home", allowed_paths=str(small_corpus), service_models="openai:gpt-4o-mini")
    yield service
    service.close()


def _ready(svc: Service, path: Path) -> str:
    sid = svc.create_session("acme", [{"source_name": "c", "path": str(path)}], queue=False).session_id
    svc.ingest_session(sid)
    return sid


# --- 10. uploads show their file names -------------------------------------------------------------
def test_an_upload_session_shows_file_names_not_server_paths(svc: Service, key: dict[str, str], tmp_path: Path):
    files = [
        ("files", ("notes.txt", b"The Marshall Plan rebuilt Europe.\n", "text/plain")),
        ("files", ("broken.pdf", b"%PDF-1.4 not really a pdf", "application/pdf")),
    ]
    with client(svc, worker=False) as c:
        r = c.post("/v1/sessions", files=files, headers=key)
        assert r.status_code == 202, r.text
        sid = r.json()["session_id"]
        svc.ingest_session(sid)
        view = c.get(f"/v1/sessions/{sid}", headers=key).json()
    text = json.dumps(view)
    assert str(svc.store.home) not in text and "uploads" not in text, text
    by_name = {d["path"]: d for d in view["documents"]}
    assert set(by_name) == {"notes.txt", "broken.pdf"}
    assert by_name["notes.txt"]["status"] == "READY"
    assert by_name["broken.pdf"]["status"] == "FAILED"


def test_a_path_session_still_shows_its_paths(svc: Service, key: dict[str, str], small_corpus: Path):
    sid = _ready(svc, small_corpus)
    with client(svc, worker=False) as c:
        docs = c.get(f"/v1/sessions/{sid}", headers=key).json()["documents"]
    assert docs and all(d["path"].startswith(str(small_corpus)) for d in docs)


# --- 11. server faults are 5xx with a generic message ---------------------------------------------
def test_a_missing_provider_key_on_the_server_is_503_and_logged(
    svc: Service, key: dict[str, str], small_corpus: Path, caplog: pytest.LogCaptureFixture
):
    sid = _ready(svc, small_corpus)
    body = {"question": "What rebuilt Europe?", "models": {"root": "openai:gpt-4o-mini", "sub": "openai:gpt-4o-mini"}}
    with caplog.at_level(logging.ERROR, logger="rlmx.service"), client(svc, worker=False) as c:
        r = c.post(f"/v1/sessions/{sid}/executions", json=body, headers=key)
        rt = c.post(f"/v1/sessions/{sid}/executions/runtime", json={"models": body["models"]}, headers=key)
    for resp in (r, rt):
        assert resp.status_code == 503, resp.text
        assert "OPENAI_API_KEY" not in resp.text and "export" not in resp.text
    assert "OPENAI_API_KEY" in caplog.text  # the operator learns what to fix


def test_a_store_fault_is_503_without_internal_text(
    svc: Service, key: dict[str, str], caplog: pytest.LogCaptureFixture
):
    blocked = svc.store.home / "blobs" / "uploads"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("a file where the uploads folder should be")  # writing an upload's blob fails
    with caplog.at_level(logging.ERROR, logger="rlmx.service"), client(svc, worker=False) as c:
        r = c.post("/v1/sessions", files=[("files", ("a.txt", b"text\n", "text/plain"))], headers=key)
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"]
    assert str(svc.store.home) not in r.text and "blob" not in r.text
    assert str(svc.store.home) in caplog.text


# --- 12. behaviour agrees with the schema -----------------------------------------------------------
def test_options_answers_405_allowing_every_method_of_the_path(svc: Service, key: dict[str, str]):
    with client(svc, worker=False) as c:
        sessions = c.options("/v1/sessions", headers=key)
        one = c.options("/v1/sessions/ses_x", headers=key)
    assert sessions.status_code == 405 and set(sessions.headers["allow"].split(", ")) >= {"GET", "POST"}
    assert one.status_code == 405 and set(one.headers["allow"].split(", ")) >= {"GET", "DELETE"}


def test_truncated_or_non_utf8_json_is_400_as_documented(svc: Service, key: dict[str, str]):
    json_key = {**key, "Content-Type": "application/json"}
    with client(svc, worker=False) as c:
        truncated = c.post("/v1/spans/get", content=b'{"doc_id": "d', headers=json_key)
        binary = c.post("/v1/citations/verify", content=b'{"citations": ["\xff"]}', headers=json_key)
        spec = c.get("/openapi.json").json()
    assert truncated.status_code == 400 and "not JSON" in truncated.json()["detail"]
    assert binary.status_code == 400
    for path, op in [("/v1/citations/verify", "post"), ("/v1/executions/{execution_id}/steps", "post")]:
        assert {"400", "413", "422"} <= set(spec["paths"][path][op]["responses"]), path


def test_schema_valid_bodies_are_not_refused_and_invalid_ones_are_422(
    svc: Service, key: dict[str, str], small_corpus: Path
):
    sid = _ready(svc, small_corpus)
    with client(svc, worker=False) as c:
        no_value = c.post("/v1/executions/exe_x/tools/resolve", json={"results": [{"id": "r1"}]}, headers=key)
        empty_doc = c.post("/v1/spans/get", json={"doc_id": "", "start": 0, "end": 1}, headers=key)
        neither = c.post("/v1/spans/get", json={"start": 0, "end": 1}, headers=key)
        bool_offset = c.post(
            "/v1/spans/get", json={"session_id": sid, "doc_index": 0, "start": 0, "end": True}, headers=key
        )
        by_index = c.post(
            "/v1/spans/get", json={"doc_id": "", "session_id": sid, "doc_index": 0, "start": 0, "end": 3}, headers=key
        )
        long_q = c.post(f"/v1/sessions/{sid}/executions", json={"question": "a" * 200_001}, headers=key)
        spec = c.get("/openapi.json").json()
    for r in (no_value, empty_doc, neither, bool_offset, by_index, long_q):
        assert r.status_code == 422, r.text
    upload = spec["paths"]["/v1/sessions"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["properties"]["files"]["minItems"] == 1
    comps = spec["components"]["schemas"]
    assert comps["ToolResultIn"]["anyOf"] and comps["SpanGet"]["anyOf"]
    assert comps["SpanGet"]["properties"]["doc_id"]["anyOf"][0]["minLength"] == 1
