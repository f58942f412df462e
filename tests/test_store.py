"""The stores: SQLMetadataStore round trips (on SQLite and on PostgreSQL), LocalBlobStore,
open_store, private store files."""

from __future__ import annotations

import multiprocessing
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rlmx.errors import NotFoundError, StoreError
from rlmx.store import Store, open_store
from rlmx.store.base import CorpusRecord, DocumentRecord, ExecutionRecord, FailedDocument
from rlmx.store.blobs import LocalBlobStore
from rlmx.store.sql import SQLMetadataStore
from rlmx.store.sqlite import SQLiteMetadataStore


def _doc(doc_id: str = "doc_1", raw: str = "r1", **kw: object) -> DocumentRecord:
    fields: dict[str, object] = dict(
        doc_id=doc_id,
        name="a.txt",
        source_path="/x/a.txt",
        media_type="text/plain",
        size_bytes=10,
        raw_sha256=raw,
        text_sha256="t" + raw,
        length_chars=9,
        parser="text",
        parser_version="1",
        encoding="utf-8",
        text_key=f"text/{raw}.txt",
        index_key=None,
        meta={"lines": 2, "headings": [{"level": 1, "text": "É", "start": 0}]},
    )
    fields.update(kw)
    return DocumentRecord.model_validate(fields)


@pytest.fixture(params=["sqlite", "postgresql"])
def meta(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLMetadataStore]:
    """The same store tests on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        store = SQLiteMetadataStore(tmp_path / "rlmx.sqlite")
    else:
        store = SQLMetadataStore(request.getfixturevalue("pg_url"), migrate=True)
    assert store.dialect == request.param
    yield store
    store.close()


def test_open_store_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path / "home")
    assert isinstance(store, Store)
    assert (tmp_path / "home" / "rlmx.sqlite").is_file()
    assert (tmp_path / "home" / "blobs").is_dir()
    assert not hasattr(store, "index_path")  # keyword indexes are per-corpus blobs (rlmx.corpus.corpus_index)
    store.close()
    monkeypatch.setenv("RLMX_HOME", str(tmp_path / "env-home"))
    assert open_store().home == (tmp_path / "env-home").resolve()


def test_document_round_trip(meta: SQLMetadataStore) -> None:
    doc = _doc()
    assert meta.find_document("r1", "text", "1") is None
    meta.put_document(doc)
    assert meta.get_document("doc_1") == doc
    assert meta.find_document("r1", "text", "1") == doc
    assert meta.find_document("r1", "text", "2") is None
    assert meta.find_document("r1", "pdf", "1") is None
    assert meta.get_document("doc_1").created_at.tzinfo is not None
    # putting it again refreshes fields but keeps created_at
    later = doc.model_copy(update={"meta": {"new": True}, "created_at": doc.created_at + timedelta(days=1)})
    meta.put_document(later)
    got = meta.get_document("doc_1")
    assert got.meta == {"new": True} and got.created_at == doc.created_at


def test_corpus_names_are_per_membership(meta: SQLMetadataStore) -> None:
    d1, d2 = _doc("doc_1", "r1"), _doc("doc_2", "r2", name="b.txt")
    meta.put_document(d1)
    meta.put_document(d2)
    c1 = CorpusRecord(
        corpus_id="cor_1",
        documents=[d1.model_copy(update={"name": "first/a.txt", "source_path": "/p/a.txt"}), d2],
        failures=[FailedDocument(source_path="/p/bad.bin", reason="binary", media_type=None)],
    )
    c2 = CorpusRecord(corpus_id="cor_2", documents=[d1.model_copy(update={"name": "other.txt"})])
    meta.put_corpus(c1)
    meta.put_corpus(c2)
    got1, got2 = meta.get_corpus("cor_1"), meta.get_corpus("cor_2")
    assert got1 == c1
    assert [d.name for d in got1.documents] == ["first/a.txt", "b.txt"]
    assert got1.documents[0].source_path == "/p/a.txt"
    assert [d.name for d in got2.documents] == ["other.txt"]
    assert meta.get_document("doc_1").name == "a.txt"  # the Document row keeps its own name
    # replacing a corpus replaces members and failures, keeps created_at
    c1b = c1.model_copy(update={"documents": [d2], "failures": [], "created_at": c1.created_at + timedelta(hours=1)})
    meta.put_corpus(c1b)
    got = meta.get_corpus("cor_1")
    assert [d.doc_id for d in got.documents] == ["doc_2"] and got.failures == []
    assert got.created_at == c1.created_at


def test_corpus_with_duplicate_document(meta: SQLMetadataStore) -> None:
    d = _doc()
    meta.put_document(d)
    c = CorpusRecord(corpus_id="cor_d", documents=[d, d.model_copy(update={"name": "copy.txt"})])
    meta.put_corpus(c)
    assert [x.name for x in meta.get_corpus("cor_d").documents] == ["a.txt", "copy.txt"]


def test_corpus_requires_stored_documents(meta: SQLMetadataStore) -> None:
    with pytest.raises(StoreError):
        meta.put_corpus(CorpusRecord(corpus_id="cor_x", documents=[_doc("doc_missing")]))
    with pytest.raises(NotFoundError):
        meta.get_corpus("cor_x")  # the failed write left nothing behind


def test_not_found_messages(meta: SQLMetadataStore) -> None:
    with pytest.raises(NotFoundError, match=r"doc_nope.*get_corpus"):
        meta.get_document("doc_nope")
    with pytest.raises(NotFoundError, match=r"cor_nope.*ingest"):
        meta.get_corpus("cor_nope")
    with pytest.raises(NotFoundError, match=r"exe_nope.*list_executions"):
        meta.get_execution("exe_nope")


def _exe(eid: str, minutes: int, parent: str | None = None, **kw: object) -> ExecutionRecord:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    return ExecutionRecord(
        execution_id=eid,
        corpus_id="cor_1",
        question=f"q {eid}",
        parent_id=parent,
        root_id=None if parent is None else "e1",
        depth=0 if parent is None else 1,
        created_at=base + timedelta(minutes=minutes),
        **kw,
    )


def test_executions(meta: SQLMetadataStore) -> None:
    e1 = _exe(
        "e1",
        0,
        usage={"turns": 2},
        budgets={"max_turns": 5},
        citations=[{"doc_id": "d", "start": 0, "end": 3}],
        fields={"x": 1},
    )
    meta.put_execution(e1)
    meta.put_execution(_exe("e2", 5))
    meta.put_execution(_exe("e3", 10))
    meta.put_execution(_exe("c1", 2, parent="e1"))
    meta.put_execution(_exe("c2", 1, parent="e1"))
    assert meta.get_execution("e1") == e1
    assert [e.execution_id for e in meta.list_executions()] == ["e3", "e2", "e1"]
    assert [e.execution_id for e in meta.list_executions(limit=2)] == ["e3", "e2"]
    assert [e.execution_id for e in meta.list_executions(parent_id="e1")] == ["c2", "c1"]
    assert meta.list_executions(parent_id="nobody") == []
    done = e1.model_copy(
        update={
            "status": "COMPLETED",
            "answer": "42",
            "finished_at": datetime(2025, 1, 2, tzinfo=UTC),
        }
    )
    meta.put_execution(done)
    assert meta.get_execution("e1") == done


def test_turns_and_subcalls(meta: SQLMetadataStore) -> None:
    meta.add_turn("e1", 1, {"code": "print(2)"})
    meta.add_turn("e1", 0, {"code": "print(1)", "when": datetime(2025, 1, 1, tzinfo=UTC)})
    assert meta.get_turns("e1") == [
        {"code": "print(1)", "when": "2025-01-01T00:00:00+00:00"},
        {"code": "print(2)"},
    ]
    meta.add_turn("e1", 1, {"code": "replaced"})
    assert meta.get_turns("e1")[1] == {"code": "replaced"}
    assert meta.get_turns("other") == []
    meta.add_subcall("e1", {"id": "s1", "prompt": "p"})
    meta.add_subcall("e1", {"id": "s2", "prompt": "q"})
    assert [s["id"] for s in meta.get_subcalls("e1")] == ["s1", "s2"]
    assert meta.get_subcalls("other") == []


def test_llm_cache(meta: SQLMetadataStore) -> None:
    assert meta.cache_get("k") is None
    meta.cache_put("k", {"text": "héllo", "usage": {"input_tokens": 3}})
    assert meta.cache_get("k") == {"text": "héllo", "usage": {"input_tokens": 3}}
    meta.cache_put("k", {"text": "new"})
    assert meta.cache_get("k") == {"text": "new"}


def test_memory_url_and_reopen(tmp_path: Path) -> None:
    mem = SQLiteMetadataStore(":memory:")
    mem.cache_put("a", {"b": 1})
    assert mem.cache_get("a") == {"b": 1}
    path = tmp_path / "db.sqlite"
    first = SQLiteMetadataStore(path)
    first.put_document(_doc())
    first.close()
    again = SQLiteMetadataStore(f"sqlite:///{path}")
    assert again.get_document("doc_1").doc_id == "doc_1"
    assert again.engine.dialect.name == "sqlite"
    with again.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def _writer(path: str, worker: int) -> None:
    store = SQLiteMetadataStore(path)
    for i in range(25):
        store.cache_put(f"w{worker}-{i}", {"i": i})
        store.add_turn(f"exe-{worker}", i, {"i": i})
    store.close()


def test_several_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = SQLiteMetadataStore(path)
    for w in range(4):
        assert len(store.get_turns(f"exe-{w}")) == 25
        assert store.cache_get(f"w{w}-24") == {"i": 24}


# --- blobs ---------------------------------------------------------------------------


def test_blob_round_trip(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    assert not blobs.exists("text/a.txt")
    blobs.put("text/a.txt", b"hello")
    assert blobs.exists("text/a.txt") and blobs.get("text/a.txt") == b"hello"
    assert blobs.local_path("text/a.txt").read_bytes() == b"hello"
    blobs.put("text/a.txt", b"replaced")
    assert blobs.get("text/a.txt") == b"replaced"
    assert [p.name for p in (tmp_path / "blobs" / "text").iterdir()] == ["a.txt"]  # no temp left
    blobs.delete("text/a.txt")
    blobs.delete("text/a.txt")  # absent: no-op
    assert not blobs.exists("text/a.txt")
    blobs.put("empty.bin", b"")
    assert blobs.get("empty.bin") == b""


def test_blob_not_found(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    with pytest.raises(NotFoundError, match=r"text/x\.txt.*ingest"):
        blobs.get("text/x.txt")
    with pytest.raises(NotFoundError):
        blobs.local_path("text/x.txt")


@pytest.mark.parametrize(
    "key", ["", "/abs", "a//b", "../x", "a/../b", "a/./b", "sp ace", "a\\b", "trailing/", ".tmp-x"]
)
def test_blob_key_validation(tmp_path: Path, key: str) -> None:
    blobs = LocalBlobStore(tmp_path)
    with pytest.raises(ValueError, match="invalid blob key"):
        blobs.put(key, b"x")
    with pytest.raises(ValueError):
        blobs.exists(key)


# --- private store files (issue 9 item 5) ----------------------------------------------


def test_sqlite_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a permissive umask: the store must not rely on the user's
    try:
        store = SQLiteMetadataStore(tmp_path / "new" / "rlmx.sqlite")
        store.cache_put("k", {"v": 1})
        assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
        for name in ("rlmx.sqlite", "rlmx.sqlite-wal", "rlmx.sqlite-shm"):
            assert stat.S_IMODE((tmp_path / "new" / name).stat().st_mode) == 0o600, name
        store.close()
        legacy = tmp_path / "legacy.sqlite"
        SQLiteMetadataStore(legacy).close()
        legacy.chmod(0o644)  # written by a release that did not restrict it
        SQLiteMetadataStore(legacy).close()
        assert stat.S_IMODE(legacy.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_count_turns_counts_without_reading(meta: SQLiteMetadataStore) -> None:
    assert meta.count_turns("exe_none") == 0
    for i in (1, 2, 3):
        meta.add_turn("exe_c", i, {"turn": i, "stdout": "x" * 1000})
    assert meta.count_turns("exe_c") == 3 == len(meta.get_turns("exe_c"))
