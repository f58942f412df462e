"""The queue at scale: Procrastinate on PostgreSQL, blobs on S3 (issue 8 item 3).

Real PostgreSQL and a real S3 endpoint (moto), started by the test fixtures; the LM is the
offline baseline policy or a local OpenAI-compatible server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from rlmx.queue.pg import PgQueue
from rlmx.service.core import Service
from rlmx.service.settings import ServiceSettings
from rlmx.service.worker import Worker
from rlmx.store import open_store
from service_support import wait_for


def _service(tmp_path: Path, pg_url: str, s3_url: str, name: str = "home", **settings: object) -> Service:
    store = open_store(tmp_path / name, database_url=pg_url, blob_url=s3_url, migrate=True)
    return Service(ServiceSettings(home=tmp_path / name, lease_seconds=3, poll_seconds=0.1, **settings), store)


def test_answerer_runs_through_procrastinate(tmp_path: Path, small_corpus: Path, pg_url: str, s3_url: str) -> None:
    svc = _service(tmp_path, pg_url, s3_url)
    assert isinstance(svc.queue, PgQueue)
    sid = svc.create_session("acme", [{"source_name": "c", "path": str(small_corpus)}]).session_id
    with svc.meta.engine.connect() as conn:  # the ingest job is a Procrastinate job, not only a row
        n = conn.execute(text("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'rlmx.job'")).scalar()
    assert n == 1

    async def run() -> str:
        stop = asyncio.Event()
        worker = asyncio.create_task(Worker(svc, concurrency=2).run(stop))
        await asyncio.to_thread(wait_for, lambda: svc.meta.get_session(sid).status == "READY", "ingestion")
        eid = svc.create_execution(
            "acme",
            sid,
            {"question": "What did the Marshall Plan do?", "models": {"root": "baseline", "sub": "baseline"}},
        )["execution_id"]
        await asyncio.to_thread(
            wait_for, lambda: any(e["kind"] == "final" for e in svc.meta.get_events(eid)), "the final event"
        )
        rec = svc.meta.get_execution(eid)
        stop.set()
        await worker
        assert rec.status == "COMPLETED", rec.error
        return eid

    eid = asyncio.run(run())
    rec = svc.meta.get_execution(eid)
    assert rec.citations and "Marshall" in rec.answer
    from rlmx.engine.verify import verify_citations

    assert all(c.ok for c in verify_citations(rec.citations, svc.store))
    with svc.meta.engine.connect() as conn:
        statuses = conn.execute(text("SELECT status::text FROM procrastinate_jobs ORDER BY id")).scalars().all()
    assert statuses == ["succeeded", "succeeded"]
    kinds = [e["kind"] for e in svc.meta.get_events(eid)]
    assert kinds[0] == "execution_started" and kinds[-1] == "final"
    svc.close()


def test_cancel_before_a_worker_takes_it(tmp_path: Path, small_corpus: Path, pg_url: str, s3_url: str) -> None:
    svc = _service(tmp_path, pg_url, s3_url)
    sid = svc.create_session("acme", [{"source_name": "c", "path": str(small_corpus)}], queue=False).session_id
    svc.ingest_session(sid)
    eid = svc.create_execution("acme", sid, {"question": "q?", "models": {"root": "baseline", "sub": "baseline"}})[
        "execution_id"
    ]
    out = asyncio.run(svc.cancel("acme", eid))
    assert out["status"] == "CANCELLED"
    with svc.meta.engine.connect() as conn:
        status = conn.execute(
            text("SELECT status::text FROM procrastinate_jobs WHERE queueing_lock = :j"), {"j": eid}
        ).scalar()
    assert status == "cancelled"
    svc.close()


def test_queue_schema_is_applied_once_by_servers_starting_together(pg_url: str) -> None:
    """Several servers applying Procrastinate's schema at the same moment: exactly one
    applies it (an advisory lock), the others find it; then Services start on it."""
    import threading

    from rlmx.store import open_metadata

    metas = [open_metadata(pg_url, migrate=True) for _ in range(4)]
    queues = [PgQueue(pg_url, m) for m in metas]
    barrier = threading.Barrier(len(queues))
    applied: list[bool] = []

    def start(q: PgQueue) -> None:
        barrier.wait()
        applied.append(q.ensure_schema())

    threads = [threading.Thread(target=start, args=(q,)) for q in queues]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert sorted(applied) == [False, False, False, True]
    for q, m in zip(queues, metas, strict=True):
        q.close()
        m.close()  # type: ignore[attr-defined]


def test_uploads_reach_a_worker_on_another_host(tmp_path: Path, pg_url: str, s3_url: str) -> None:
    """An upload received by one API server is ingested by a worker that cannot see that
    server's disk: the file travels through the blob store."""
    from fastapi.testclient import TestClient

    from rlmx.service.app import create_app

    api = _service(tmp_path, pg_url, s3_url, name="api-home")
    key = api.keys.create("acme")[0]
    with TestClient(create_app(api, worker=False)) as c:
        files = [("files", ("notes.txt", b"The Marshall Plan rebuilt Europe after the war.\n", "text/plain"))]
        r = c.post("/v1/sessions", files=files, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 202, r.text
    sid = r.json()["session_id"]
    rec = api.meta.get_session(sid)
    assert rec.upload_dir and rec.inputs[0]["blob"] == f"uploads/{sid}/0"
    import shutil

    shutil.rmtree(rec.upload_dir)  # the API server's disk is not the worker's
    worker_side = _service(tmp_path, pg_url, s3_url, name="worker-home")
    worker_side.ingest_session(sid)
    done = worker_side.meta.get_session(sid)
    assert done.status == "READY", done.error
    assert [d["path"] for d in done.documents] == ["notes.txt"]  # the uploaded name, never a server path
    corpus = worker_side.meta.get_corpus(done.corpus_id or "")
    assert corpus.documents[0].name == "notes.txt"
    api.delete_session("acme", sid)
    assert not worker_side.store.blobs.exists(f"uploads/{sid}/0")
    api.close()
    worker_side.close()
