"""Per-corpus keyword indexes (``index/v1/<corpus_id>.fts5`` blobs, docs/search.md): built
once at ingestion, the same hits wherever the corpus is ingested, one index per corpus even
when corpora share documents, rebuilt when the blob is missing, and the corpus layer works
against any store shaped like :class:`rlmx.corpus.ports.CorpusStore`."""

from __future__ import annotations

import dataclasses
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlmx.corpus import context_spec, corpus_from_texts, ensure_index, index_key, ingest
from rlmx.corpus.index import SearchIndex, SearchRow
from rlmx.corpus.records import CorpusRecord, DocumentRecord
from rlmx.errors import NotFoundError
from rlmx.store import open_store

WORDS = "alpha beta gamma delta zebra crossing marshall plan europe vault code café naïve".split()  # noqa: SIM905
QUERIES = ["zebra crossing", "marshall plan", '"vault code"', "café", "europe alpha", "zzzz"]


def _folder(root: Path, n: int = 6, seed: int = 3) -> Path:
    rnd = random.Random(seed)
    root.mkdir(parents=True)
    for i in range(n):
        lines = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(3, 12))) for _ in range(150)]
        (root / f"doc{i}.txt").write_text("\n".join(lines), encoding="utf-8")
    return root


def _hits(corpus: CorpusRecord, store: object) -> dict[str, list[SearchRow]]:
    index = SearchIndex(ensure_index(corpus, store), readonly=True, immutable=True)  # type: ignore[arg-type]
    try:
        return {q: index.search(q, 25) for q in QUERIES}
    finally:
        index.close()


def test_hits_keep_their_shape_and_match_a_store_wide_index_of_the_same_documents(tmp_path: Path):
    store = open_store(tmp_path / "home")
    corpus = ingest([_folder(tmp_path / "docs")], store)
    hits = _hits(corpus, store)
    assert any(hits.values())
    texts = {d.doc_id: store.blobs.get(d.text_key).decode() for d in corpus.documents}
    for rows in hits.values():
        for r in rows:
            assert [f.name for f in dataclasses.fields(r)] == ["doc_id", "start", "end", "score"]
            assert isinstance(r.start, int) and 0 <= r.start < r.end <= len(texts[r.doc_id])  # characters
    legacy = SearchIndex(tmp_path / "index.sqlite")  # today's layout, holding this corpus only
    legacy.add_many(texts.items())
    assert {q: legacy.search(q, 25) for q in QUERIES} == hits  # identical rows and scores
    legacy.close()
    info = SearchIndex(ensure_index(corpus, store), readonly=True).info()
    assert info == {"format": "1", "corpus_id": corpus.corpus_id, "documents": "6", "chunks": info["chunks"]}
    store.close()


def test_a_corpus_ingested_into_two_stores_gives_the_same_hits(tmp_path: Path):
    docs = _folder(tmp_path / "docs")
    one = open_store(tmp_path / "one")
    two = open_store(tmp_path / "two")
    ingest([docs / "doc3.txt", docs / "doc1.txt"], two)  # store two has some documents cached already
    a, b = ingest([docs], one), ingest([docs], two)
    assert a.corpus_id == b.corpus_id
    assert _hits(a, one) == _hits(b, two)
    one.close()
    two.close()


def test_two_corpora_sharing_documents_each_get_their_own_index(tmp_path: Path):
    docs = _folder(tmp_path / "docs", n=3)
    store = open_store(tmp_path / "home")
    x = ingest([docs / "doc0.txt", docs / "doc1.txt"], store)
    y = ingest([docs / "doc1.txt", docs / "doc2.txt"], store)
    shared = {d.doc_id for d in x.documents} & {d.doc_id for d in y.documents}
    assert len(shared) == 1 and index_key(x.corpus_id) != index_key(y.corpus_id)
    for corpus in (x, y):
        assert store.blobs.exists(index_key(corpus.corpus_id))  # built at ingestion
        index = SearchIndex(ensure_index(corpus, store), readonly=True, immutable=True)
        others = {d.doc_id for c in (x, y) for d in c.documents} - {d.doc_id for d in corpus.documents}
        assert all(index.has(d.doc_id) for d in corpus.documents) and not any(index.has(i) for i in others)
        assert {r.doc_id for q in QUERIES for r in index.search(q, 50)} <= {d.doc_id for d in corpus.documents}
        index.close()
    store.close()


def test_a_missing_index_blob_is_rebuilt_and_a_missing_text_is_a_clear_error(tmp_path: Path):
    store = open_store(tmp_path / "home")
    corpus = corpus_from_texts({"a.txt": "zebras cross here\n" * 40, "b.txt": "Marshall plan\n" * 30}, store)
    want = _hits(corpus, store)
    key = index_key(corpus.corpus_id)
    store.blobs.delete(key)
    spec = context_spec(corpus, store)  # what an execution opens: the index comes back
    assert store.blobs.exists(key) and spec.index_path == str(store.blobs.local_path(key))
    assert _hits(corpus, store) == want
    store.blobs.delete(key)
    store.blobs.delete(corpus.documents[0].text_key)
    with pytest.raises(NotFoundError, match="ingest the files again"):
        ensure_index(corpus, store)
    store.close()


class _RemoteBlobs:
    """A blob store that is not the local folder: bytes in a dict, ``local_path`` copies a
    blob into a local cache folder (as the S3 store's bounded cache does)."""

    def __init__(self, cache: Path) -> None:
        self.data: dict[str, bytes] = {}
        self.cache = cache

    def put(self, key: str, data: bytes) -> None:
        self.data[key] = bytes(data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if key in self.data:
            return False
        self.data[key] = bytes(data)
        return True

    def get(self, key: str) -> bytes:
        if key not in self.data:
            raise NotFoundError(f"blob {key!r} not found; ingest the files again")
        return self.data[key]

    def exists(self, key: str) -> bool:
        return key in self.data

    def local_path(self, key: str) -> Path:
        path = self.cache / key.replace("/", "_")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.get(key))
        return path


class _Catalog:
    def __init__(self) -> None:
        self.docs: dict[tuple[str, str, str], DocumentRecord] = {}
        self.corpora: dict[str, CorpusRecord] = {}

    def find_document(self, raw_sha256: str, parser: str, parser_version: str) -> DocumentRecord | None:
        return self.docs.get((raw_sha256, parser, parser_version))

    def put_document(self, doc: DocumentRecord) -> None:
        self.docs[(doc.raw_sha256, doc.parser, doc.parser_version)] = doc

    def put_corpus(self, corpus: CorpusRecord) -> None:
        self.corpora[corpus.corpus_id] = corpus

    def get_corpus(self, corpus_id: str) -> CorpusRecord:
        return self.corpora[corpus_id]


def test_the_corpus_layer_needs_only_its_ports(tmp_path: Path):
    docs = _folder(tmp_path / "docs", n=4)
    remote = SimpleNamespace(meta=_Catalog(), blobs=_RemoteBlobs(tmp_path / "cache"))
    corpus = ingest([docs], remote)  # type: ignore[arg-type]
    assert index_key(corpus.corpus_id) in remote.blobs.data
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)  # a cold cache on another host
    local = open_store(tmp_path / "home")
    assert _hits(corpus, remote) == _hits(ingest([docs], local), local)
    assert context_spec(corpus, remote).index_path.startswith(str(tmp_path / "cache"))  # type: ignore[arg-type, union-attr]
    local.close()
