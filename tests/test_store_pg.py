"""The SQL store's queue and fencing on both dialects (PostgreSQL and SQLite): fenced
writes of a lost lease change nothing, claims from many threads never double-claim, any
Fence works through fenced_by; database URLs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select

from rlmx.errors import ConfigError
from rlmx.store import open_metadata
from rlmx.store import schema as t
from rlmx.store.base import ExecutionRecord, Fence, JobRecord, MetadataStore
from rlmx.store.sql import SQLMetadataStore
from rlmx.store.sql_core import database_url
from rlmx.store.sql_jobs import JobLeaseFence


@pytest.fixture(params=["postgresql", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLMetadataStore]:
    if request.param == "sqlite":
        s = SQLMetadataStore(tmp_path / "meta.sqlite")
    else:
        s = SQLMetadataStore(request.getfixturevalue("pg_url"), migrate=True)
    yield s
    s.close()


def _exe(eid: str) -> ExecutionRecord:
    return ExecutionRecord(execution_id=eid, corpus_id="cor_1", question="q?")


def test_fenced_write_after_lost_lease_changes_nothing(store: SQLMetadataStore) -> None:
    store.enqueue_job(JobRecord(job_id="job_1", kind="answerer", ref_id="e1"))
    job = store.claim_job("w1", lease_s=-1)  # a lease that has already expired
    assert job is not None and job.attempts == 1
    lost: list[int] = []
    view = store.fenced("job_1", "w1", job.attempts, on_lost=lambda: lost.append(1))
    view.put_execution(_exe("e1"))  # still held (nobody took it yet): committed
    assert store.get_execution("e1").status == "RUNNING"

    again = store.claim_job("w2", lease_s=60)  # another worker takes the expired job
    assert again is not None and again.lease_owner == "w2" and again.attempts == 2
    view.put_execution(_exe("e1").model_copy(update={"status": "COMPLETED"}))
    view.cache_put("late", {"v": 1})
    assert store.get_execution("e1").status == "RUNNING"  # the late writes changed nothing
    assert store.cache_get("late") is None
    assert lost == [1] and view.lease_lost and not store.lease_lost
    assert not view.renew_lease("job_1", "w1", 60, attempt=1)

    w2 = store.fenced("job_1", "w2", again.attempts)
    w2.put_execution(_exe("e1").model_copy(update={"status": "COMPLETED"}))
    assert store.get_execution("e1").status == "COMPLETED" and not w2.lease_lost


class _FlagFence:
    """A Fence over a flag; records whether the write had happened when it was asked."""

    def __init__(self) -> None:
        self.ok = True
        self.seen: list[tuple[bool, int]] = []

    def held(self, conn: Connection) -> bool:
        rows = conn.execute(select(func.count()).select_from(t.llm_cache)).scalar_one()
        self.seen.append((conn.in_transaction(), rows))
        return self.ok


def test_fenced_by_any_fence(store: SQLMetadataStore) -> None:
    fence = _FlagFence()
    assert isinstance(fence, Fence)
    calls: list[str] = []
    view: MetadataStore = store.fenced_by(fence, on_lost=lambda: calls.append("lost"))
    view.cache_put("a", {"v": 1})
    assert fence.seen == [(True, 0)]  # asked in the write's transaction, before the write
    assert view.cache_get("a") == {"v": 1} and len(fence.seen) == 1  # reads are not fenced
    fence.ok = False
    view.cache_put("b", {"v": 2})
    view.cache_put("c", {"v": 3})
    assert store.cache_get("b") is None and store.cache_get("c") is None
    assert calls == ["lost"] and view.lease_lost
    both = store.fenced("nope", "w", 1).fenced_by(_FlagFence())  # a view of a view checks both
    both.cache_put("d", {"v": 4})
    assert store.cache_get("d") is None
    assert isinstance(JobLeaseFence("j", "w", 1), Fence)


def test_claims_from_many_threads_never_double_claim(store: SQLMetadataStore) -> None:
    n_jobs, n_threads = 40, 8
    for i in range(n_jobs):
        store.enqueue_job(JobRecord(job_id=f"job_{i:03d}", kind="ingest", ref_id=f"s{i}"))
    barrier = threading.Barrier(n_threads)
    claimed: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        try:
            barrier.wait(30)
            while (job := store.claim_job(f"w{w}", lease_s=300)) is not None:
                assert job.lease_owner == f"w{w}" and job.attempts == 1
                with lock:
                    claimed.append(job.job_id)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors
    assert sorted(claimed) == [f"job_{i:03d}" for i in range(n_jobs)]  # each once, none lost
    assert store.claim_job("late", lease_s=300) is None


def test_job_lifecycle(store: SQLMetadataStore) -> None:
    store.enqueue_job(JobRecord(job_id="j1", kind="answerer", ref_id="e1"))
    store.enqueue_job(JobRecord(job_id="j2", kind="ingest", ref_id="s1"))
    job = store.claim_job("w1", 60, kinds=["ingest"])
    assert job is not None and job.job_id == "j2"
    assert store.holds_lease("j2", "w1", 1) and not store.holds_lease("j2", "w1", 2)
    assert store.renew_lease("j2", "w1", 60, attempt=1)
    assert store.release_job("j2", "w1")
    queued = store.get_job("j2")
    assert queued is not None and queued.state == "QUEUED"
    assert store.finish_job("j2", None, error="x")
    before = store.request_cancel("j1")
    assert before is not None and before.state == "QUEUED"
    got = store.get_job("j1")
    assert got is not None and got.state == "DONE" and got.cancel_requested
    assert store.request_cancel("nope") is None


def test_event_ids_increase(store: SQLMetadataStore) -> None:
    ids = [store.add_event("e1", "turn", {"i": i}) for i in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert [e["data"]["i"] for e in store.get_events("e1", after=ids[0])] == [1, 2]


def test_open_metadata_postgres(pg_url: str) -> None:
    meta = open_metadata(pg_url, migrate=True)
    try:
        assert isinstance(meta, SQLMetadataStore) and meta.dialect == "postgresql"
        assert "postgres@127.0.0.1" in repr(meta)
    finally:
        meta.close()


def test_database_urls(tmp_path: Path) -> None:
    assert database_url("postgresql://u:p@h:5432/db") == "postgresql+psycopg://u:p@h:5432/db"
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url(":memory:") == "sqlite://"
    assert database_url(tmp_path / "x" / "m.sqlite") == f"sqlite:///{tmp_path / 'x' / 'm.sqlite'}"
    assert not (tmp_path / "postgresql+psycopg:").exists()
    for bad in ("mysql://u@h/db", "postgresql://h", "postgresql:/h/db", "postgresql+psycopg2://h/db", ""):
        with pytest.raises(ConfigError, match="postgresql\\+psycopg://"):
            database_url(bad)


def test_missing_postgres_binaries_say_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rlmx.dev import postgres
    from rlmx.errors import RlmxError

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("RLMX_PG_BIN", raising=False)
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [])
    with pytest.raises(postgres.PostgresUnavailableError, match="apt-get install postgresql") as e:
        postgres.LocalPostgres().start(tmp_path / "pg")
    assert isinstance(e.value, RlmxError)
