"""A session's view: ingestion progress while CREATING, the persisted ingestion summary, and
its per-document entries one page at a time (``GET /v1/sessions/{id}?documents=offset,limit``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from rlmx.service import sessions as sessions_module
from service_support import client, ready_session

N_TEXTS = 120  # more than one default page


def _folder(root: Path) -> Path:
    """N_TEXTS distinct texts, one exact duplicate, one stylesheet (skipped), one binary (failed)."""
    root.mkdir()
    for i in range(N_TEXTS):
        (root / f"note_{i:03d}.txt").write_text(f"Note {i}: the harvest of year {1900 + i} was counted.\n")
    (root / "copy_of_note_007.txt").write_text((root / "note_007.txt").read_text())
    (root / "site.css").write_text("body { margin: 0 }\n")
    (root / "blob.dat").write_bytes(b"\x00\x01\x02binary\x00" * 50)
    return root


def test_documents_come_in_pages_with_totals_and_the_summary_is_stored(svc, key, small_corpus: Path):
    folder = _folder(small_corpus / "notes")
    with client(svc) as c:
        s = ready_session(c, key, [{"path": str(folder)}])
        assert s["status"] == "READY", s
        sid = s["session_id"]
        entries = N_TEXTS + 3  # the kept texts, the duplicate, the skipped stylesheet, the failure
        assert s["documents_page"] == {
            "offset": 0,
            "limit": sessions_module.DOCUMENTS_PAGE,
            "total": entries,
            "next_offset": sessions_module.DOCUMENTS_PAGE,
        }
        assert len(s["documents"]) == sessions_module.DOCUMENTS_PAGE
        assert s["n_documents"] == N_TEXTS and s["n_failed"] == 1
        assert s["documents_parsed"] == s["documents_total"] == N_TEXTS + 2  # the stylesheet is never read
        # every page in turn gives every entry once
        seen: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            page = c.get(f"/v1/sessions/{sid}?documents={offset},37", headers=key).json()
            assert page["documents_page"]["total"] == entries and page["documents_page"]["limit"] == 37
            seen += page["documents"]
            offset = page["documents_page"]["next_offset"]
        assert len(seen) == entries
        by_status: dict[str, int] = {}
        for d in seen:
            by_status[d["status"]] = by_status.get(d["status"], 0) + 1
        assert by_status == {"READY": N_TEXTS, "DUPLICATE": 1, "SKIPPED": 1, "FAILED": 1}
        kept_name = next(d["duplicate_of"] for d in seen if d["status"] == "DUPLICATE")
        # the summary is the one stored when ingestion ended, not recomputed from a page
        stored = svc.meta.get_session_ingest([sid])[sid]
        assert stored["summary"] == s["summary"]
        assert s["summary"]["kept"] == N_TEXTS and s["summary"]["duplicates"] == 1
        assert s["summary"]["skipped"] == {next(d["reason"] for d in seen if d["status"] == "SKIPPED"): 1}
        assert sum(s["summary"]["failed"].values()) == 1
        assert list(s["summary"]["aliases"]) == [kept_name]
        past_end = c.get(f"/v1/sessions/{sid}?documents={entries + 5},10", headers=key).json()
        assert past_end["documents"] == [] and past_end["documents_page"]["next_offset"] is None
        listed = c.get("/v1/sessions", headers=key).json()["sessions"]
        assert [x["session_id"] for x in listed] == [sid] and listed[0]["summary"] == s["summary"]
        assert len(listed[0]["documents"]) == sessions_module.DOCUMENTS_PAGE


@pytest.mark.parametrize(
    ("query", "status"), [("0,0", 422), ("0,1001", 422), ("0,01", 422), ("abc", 422), ("1,2,3", 422)]
)
def test_bad_pages_are_client_errors(svc, key, small_corpus: Path, query: str, status: int):
    with client(svc) as c:
        sid = ready_session(c, key, [{"path": str(small_corpus)}])["session_id"]
        r = c.get(f"/v1/sessions/{sid}?documents={query}", headers=key)
        assert r.status_code == status, r.text


def test_a_creating_session_reports_files_parsed_so_far(svc, key, small_corpus: Path, monkeypatch):
    """The ingest job is held after its third file; meanwhile the session is CREATING and
    says 3 of N files are parsed."""
    folder = _folder(small_corpus / "notes")
    monkeypatch.setattr(sessions_module, "PROGRESS_EVERY_S", 0.0)
    reached, release = threading.Event(), threading.Event()
    real = svc.meta.put_session_ingest

    def held(session_id: str, **kw: Any) -> None:
        real(session_id, **kw)
        if kw["documents_parsed"] == 3 and kw["summary"] is None:
            reached.set()
            assert release.wait(60), "the test never released the ingest job"

    monkeypatch.setattr(svc.meta, "put_session_ingest", held)
    with client(svc, worker=False) as c:
        r = c.post("/v1/sessions", json={"docs": [{"path": str(folder)}]}, headers=key)
        sid = r.json()["session_id"]
        first = c.get(f"/v1/sessions/{sid}", headers=key).json()
        assert first["status"] == "CREATING" and first["documents_parsed"] == 0 and first["summary"] is None
        job = threading.Thread(target=svc.ingest_session, args=(sid,))
        job.start()
        try:
            assert reached.wait(60), "ingestion never reached its third file"
            mid = c.get(f"/v1/sessions/{sid}", headers=key).json()
            assert mid["status"] == "CREATING"
            assert (mid["documents_parsed"], mid["documents_total"]) == (3, N_TEXTS + 2)
            assert mid["documents"] == [] and mid["summary"] is None
        finally:
            release.set()
            job.join(120)
        done = c.get(f"/v1/sessions/{sid}", headers=key).json()
        assert done["status"] == "READY" and done["documents_parsed"] == N_TEXTS + 2
        assert done["summary"]["kept"] == N_TEXTS


@pytest.fixture(params=["postgresql", "sqlite"])
def meta(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    from rlmx.store.sql import SQLMetadataStore

    if request.param == "sqlite":
        s = SQLMetadataStore(tmp_path / "meta.sqlite")
    else:
        s = SQLMetadataStore(request.getfixturevalue("pg_url"), migrate=True)
    yield s
    s.close()


def test_ingest_rows_on_both_dialects(meta: Any):
    assert meta.get_session_ingest([]) == {} and meta.get_session_ingest(["ses_x"]) == {}
    meta.put_session_ingest("ses_a", documents_parsed=0, documents_total=None)
    meta.put_session_ingest("ses_b", documents_parsed=2, documents_total=9)
    meta.put_session_ingest(
        "ses_a", documents_parsed=5, documents_total=5, summary={"kept": 4, "aliases": {"a": ["b"]}}
    )
    assert meta.get_session_ingest(["ses_a", "ses_b", "ses_c"]) == {
        "ses_a": {"documents_parsed": 5, "documents_total": 5, "summary": {"kept": 4, "aliases": {"a": ["b"]}}},
        "ses_b": {"documents_parsed": 2, "documents_total": 9, "summary": None},
    }
