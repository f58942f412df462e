"""Large text files are ingested in blocks (:mod:`rlmx.corpus.stream`): the same canonical
text, checksum, code-point offsets, offset index and keyword chunks as the in-memory path,
whatever falls on a block boundary."""

from __future__ import annotations

import hashlib
import random
import sqlite3
from pathlib import Path

import pytest

from rlmx.corpus import ingest, pipeline, stream
from rlmx.corpus.canonical import CHECKPOINT, build_offset_index, canonicalize
from rlmx.corpus.corpus_index import index_key
from rlmx.corpus.index import chunk_spans
from rlmx.store import Store, open_store

# Each piece is a trap at a cut: CR|LF, a base letter|its combining accent, '<'|U+0338
# (composes to U+226E), Hangul jamo L|V|T, a 4-byte UTF-8 character split across blocks,
# NULs between a letter and its accent, a BOM inside the text, marks to reorder (ccc 230/220).
TRAPS = [
    "line\r\n",
    "lone\rcarriage",
    "cafe\u0301 ",
    "a<\u0338b",
    "\u1100\u1161\u11a8 ",
    "emoji \U0001f600\U0001f4a9 ",
    "e\x00\u0301",
    "mid\ufeffbom ",
    "q\u0301\u0323 ",
    "\u00e9\u0300",
    "plain ascii words to fill the chunks with something searchable ",
    "\n",
    "\r",
    "\u0301",
    "Zürich naïve façade ",
]


def _tricky_text(n_pieces: int, seed: int) -> str:
    rng = random.Random(seed)
    # BOMs first (all dropped), then 8 KiB without NULs (a NUL there means a binary file)
    parts = ["\ufeff\ufeff", "words and more words " * 500]
    parts += [rng.choice(TRAPS) for _ in range(n_pieces)]
    parts.append("\u4e2d" * 9000)  # a long run with neither newline nor ASCII
    parts += [rng.choice(TRAPS) for _ in range(n_pieces // 10)]
    return "".join(parts)


def _pieces(s: str, rng: random.Random, most: int) -> list[str]:
    out, i = [], 0
    while i < len(s):
        j = i + rng.randint(1, most)
        out.append(s[i:j])
        i = j
    return out


@pytest.mark.parametrize("seed", range(6))
def test_canonicalizer_offsets_and_chunks_equal_the_whole_text_paths(seed: int):
    rng = random.Random(seed)
    text = _tricky_text(3000, seed)
    want = canonicalize(text)
    canon = stream.Canonicalizer()
    got = "".join(canon.feed(p) for p in _pieces(text, rng, 40 if seed % 2 else 3000)) + canon.finish()
    assert got == want
    offsets, cutter = stream.OffsetIndexBuilder(), stream.ChunkCutter()
    chunks = []
    for p in _pieces(want, rng, 2 * CHECKPOINT + 7):
        offsets.feed(p)
        chunks += cutter.feed(p)
    chunks += cutter.finish()
    assert offsets.finish() == build_offset_index(want)
    assert chunks == [(a, b, want[a:b]) for a, b in chunk_spans(want)]


def test_every_cut_of_a_short_text():
    text = "\ufeffa\r\ne\u0301<\u0338\u1100\u1161\u11a8\x00\u0301\r\r\n\U0001f600x\ufeff"
    want = canonicalize(text)
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            c = stream.Canonicalizer()
            assert c.feed(text[:i]) + c.feed(text[i:j]) + c.feed(text[j:]) + c.finish() == want, (i, j)
    for t in ("", "\ufeff", "\ufeff\x00", "abc", "é"):
        assert stream.OffsetIndexBuilder().finish() is None
        b = stream.OffsetIndexBuilder()
        b.feed(canonicalize(t))
        assert b.finish() == build_offset_index(canonicalize(t))


def _chunks(store: Store, corpus_id: str) -> list[tuple[int, int]]:
    db = sqlite3.connect(store.blobs.local_path(index_key(corpus_id)))
    try:
        return [(a, b) for a, b in db.execute('SELECT start, "end" FROM chunks ORDER BY start')]
    finally:
        db.close()


def test_a_streamed_file_is_stored_as_the_in_memory_path_stores_it(tmp_path: Path, monkeypatch):
    """Blocks of 64 KiB over a 3 MB file: hundreds of cuts, many inside the traps."""
    text = "".join(_tricky_text(4000, seed) for seed in range(8))
    path = tmp_path / "big.txt"
    path.write_bytes(text.encode("utf-8"))
    raw = path.read_bytes()
    canonical = canonicalize(raw.decode("utf-8"))
    reference = hashlib.sha256(canonical.encode("utf-8")).hexdigest()  # computed here, not by rlmx

    plain_store = open_store(tmp_path / "plain")
    plain = ingest([path], plain_store).documents[0]

    monkeypatch.setattr(pipeline, "STREAM_MIN_BYTES", 1024)
    monkeypatch.setattr(stream, "BLOCK_BYTES", 65536)
    streamed_store = open_store(tmp_path / "streamed")
    corpus = ingest([path], streamed_store)
    doc = corpus.documents[0]

    assert doc.text_sha256 == plain.text_sha256 == reference
    assert doc.length_chars == plain.length_chars == len(canonical)
    assert doc.raw_sha256 == hashlib.sha256(raw).hexdigest() and doc.size_bytes == len(raw)
    assert (doc.doc_id, doc.encoding, doc.media_type, doc.meta) == (
        plain.doc_id,
        plain.encoding,
        plain.media_type,
        plain.meta,
    )
    assert streamed_store.blobs.get(doc.text_key) == canonical.encode("utf-8")
    assert doc.index_key is not None
    assert streamed_store.blobs.get(doc.index_key) == build_offset_index(canonical)
    assert _chunks(streamed_store, corpus.corpus_id) == _chunks(plain_store, corpus.corpus_id) != []
    assert streamed_store.blobs.get(doc.index_key) == plain_store.blobs.get(plain.index_key or "")
    # a second ingestion is a cache hit on the streamed document
    assert ingest([path], streamed_store).documents[0].doc_id == doc.doc_id
    plain_store.close()
    streamed_store.close()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"   \n\t\n" * 400, "only whitespace"),
        (b"ok" + b"\x00" * 50 + b"rest of it" * 200, "binary content"),
        (b"\x01\x02\x03\x04" * 1000 + b"text", "control characters"),
    ],
)
def test_streamed_files_fail_as_in_memory_ones_do(tmp_path: Path, monkeypatch, content: bytes, reason: str):
    path = tmp_path / "odd.txt"
    path.write_bytes(content)
    good = tmp_path / "good.txt"
    good.write_text("A real document.\n" * 200)
    monkeypatch.setattr(pipeline, "STREAM_MIN_BYTES", 1024)
    monkeypatch.setattr(stream, "BLOCK_BYTES", 1000)
    store = open_store(tmp_path / "h")
    corpus = ingest([path, good], store)
    assert [d.name for d in corpus.documents] == ["good.txt"]
    assert len(corpus.failures) == 1 and reason in corpus.failures[0].reason, corpus.failures
    store.close()


def test_a_legacy_encoded_large_file_is_read_whole(tmp_path: Path, monkeypatch):
    path = tmp_path / "latin.txt"
    path.write_bytes("Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e.\n".encode("iso-8859-1") * 300)
    plain_store = open_store(tmp_path / "plain")
    plain = ingest([path], plain_store).documents[0]
    monkeypatch.setattr(pipeline, "STREAM_MIN_BYTES", 1024)
    store = open_store(tmp_path / "h")
    doc = ingest([path], store).documents[0]
    assert doc.encoding == plain.encoding and doc.encoding not in ("ascii", "utf-8", "utf-8-sig")
    assert doc.text_sha256 == plain.text_sha256 and "Caf" in store.blobs.get(doc.text_key).decode("utf-8")
    store.close()
    plain_store.close()


def test_a_new_corpus_of_a_cached_large_text_indexes_it_in_blocks(tmp_path: Path, monkeypatch):
    """A second corpus holding a cached large document reads its stored text in blocks
    to build the new corpus's index: the same chunks as indexing it whole."""
    from rlmx.corpus import corpus_index

    text = _tricky_text(3000, 11)
    big = tmp_path / "big.txt"
    big.write_bytes(text.encode("utf-8"))
    other = tmp_path / "other.txt"
    other.write_text("Another document about the harvest.\n")
    store = open_store(tmp_path / "h")
    first = ingest([big], store)
    monkeypatch.setattr(corpus_index, "LARGE_TEXT_BYTES", 1024)
    both = ingest([big, other], store)
    assert both.corpus_id != first.corpus_id
    canonical = canonicalize(text)
    doc = next(d for d in both.documents if d.name == "big.txt")
    want = [(a, b) for a, b in chunk_spans(canonical)]
    db = sqlite3.connect(store.blobs.local_path(index_key(both.corpus_id)))
    got = [
        (a, b) for a, b in db.execute('SELECT start, "end" FROM chunks WHERE doc_id=? ORDER BY start', (doc.doc_id,))
    ]
    db.close()
    assert got == want
    store.close()
