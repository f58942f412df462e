"""Per-corpus keyword indexes: one immutable FTS5 file per corpus, kept in the blob store.

The blob ``index/v1/<corpus_id>.fts5`` (:func:`index_key`) is an FTS5 file
(:class:`~rlmx.corpus.index.SearchIndex`) holding the chunks of exactly the corpus's
Documents. Corpus ids are content addressed (the ordered ``(doc_id, name)`` pairs), so the
file never changes once written: it is built in a private temporary file while the corpus
is ingested (:class:`IndexBuilder`; a corpus of cached Documents reads their stored texts),
published with a conditional put, and read through ``blobs.local_path`` (the file itself for
a local blob folder, a bounded local copy for S3), opened ``immutable``. BM25 statistics
are therefore per corpus: one tenant's documents never change another's scores, and every
API server and worker reads the same index whatever the metadata database.

``v1`` is the index format (chunking, tokeniser, schema); a change bumps it, and old
blobs are simply no longer read. The decision and its measurements: ``docs/search.md``.
"""

from __future__ import annotations

import codecs
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rlmx.corpus.index import SearchIndex
from rlmx.errors import NotFoundError

if TYPE_CHECKING:
    from rlmx.corpus.ports import BlobAccess, CorpusStore
    from rlmx.corpus.records import CorpusRecord, DocumentRecord

__all__ = [
    "INDEX_FORMAT",
    "IndexBuilder",
    "build_for",
    "ensure_index",
    "index_key",
    "publish_index",
    "publish_index_file",
]

INDEX_FORMAT = "1"


def index_key(corpus_id: str) -> str:
    """The blob key of ``corpus_id``'s keyword index: ``"index/v1/<corpus_id>.fts5"``."""
    return f"index/v{INDEX_FORMAT}/{corpus_id}.fts5"


class IndexBuilder:
    """Builds one corpus's FTS5 file in a private temporary folder (``tmp_dir``, default
    the system's), then hands its bytes over (:meth:`finish`) and removes it.

    ``add(doc_id, text)`` indexes a Document once (again is a no-op); :attr:`doc_ids` are
    those added. Always :meth:`discard` (or use as a context manager) when done. Raises
    ``OSError``/``sqlite3.Error`` when the temporary folder cannot be written."""

    def __init__(self, tmp_dir: str | Path | None = None) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="rlmx-index-", dir=tmp_dir))
        self.path = self._dir / "index.fts5"
        self._index: SearchIndex | None = SearchIndex(self.path, bulk=True)
        self.doc_ids: set[str] = set()
        self.chunks = 0

    def __enter__(self) -> IndexBuilder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def _open(self) -> SearchIndex:
        if self._index is None:
            raise RuntimeError("IndexBuilder: already finished or discarded")
        return self._index

    def add(self, doc_id: str, text: str) -> int:
        """Index ``text`` (canonical) as ``doc_id``; returns chunks added (0 when known)."""
        if doc_id in self.doc_ids:
            return 0
        n = self._open().add(doc_id, text)
        self.doc_ids.add(doc_id)
        self.chunks += n
        return n

    def add_chunks(self, doc_id: str, chunks: Iterable[tuple[int, int, str]]) -> int:
        """Index ``(start, end, chunk text)`` triples as ``doc_id`` (a text streamed in
        pieces: :class:`rlmx.corpus.stream.ChunkCutter`); returns chunks added (0 when known).
        Raises what iterating ``chunks`` raises: the builder is then unusable (discard it)."""
        if doc_id in self.doc_ids:
            return 0
        n = self._open().add_chunks(doc_id, chunks)
        self.doc_ids.add(doc_id)
        self.chunks += n
        return n

    def seal(self, corpus_id: str) -> Path:
        """Seal the index (``index_info``: format, corpus id, counts; FTS segments merged)
        and return its file (:attr:`path`, removed by :meth:`discard`); no more adds."""
        index = self._open()
        index.seal(
            {
                "format": INDEX_FORMAT,
                "corpus_id": corpus_id,
                "documents": str(len(self.doc_ids)),
                "chunks": str(self.chunks),
            }
        )
        index.close()
        self._index = None
        return self.path

    def finish(self, corpus_id: str) -> bytes:
        """:meth:`seal`, then return the file's bytes. The builder is discarded afterwards."""
        try:
            return self.seal(corpus_id).read_bytes()
        finally:
            self.discard()

    def discard(self) -> None:
        """Close and remove the temporary file (idempotent)."""
        if self._index is not None:
            self._index.close()
            self._index = None
        shutil.rmtree(self._dir, ignore_errors=True)


def publish_index(blobs: BlobAccess, key: str, data: bytes) -> None:
    """Store an index blob once: a conditional put where the store has one
    (``put_if_absent``; a concurrent builder's equal file wins), else a plain put."""
    put_if_absent = getattr(blobs, "put_if_absent", None)
    if callable(put_if_absent):
        try:
            put_if_absent(key, data)
            return
        except NotImplementedError:
            pass
    blobs.put(key, data)


def publish_index_file(blobs: BlobAccess, key: str, path: Path) -> None:
    """:func:`publish_index` from a file, never read whole where the store can copy a file
    (``put_file(key, path, if_absent=True)``, as the local blob folder can)."""
    put_file = getattr(blobs, "put_file", None)
    if callable(put_file):
        put_file(key, path, if_absent=True)
        return
    publish_index(blobs, key, path.read_bytes())


LARGE_TEXT_BYTES = 32 * 1024 * 1024  # stored texts this large are indexed in blocks


def _stored_chunks(path: Path) -> Iterator[tuple[int, int, str]]:
    """The index chunks of a stored canonical text, read in 4 MiB blocks."""
    from rlmx.corpus.stream import ChunkCutter

    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    cutter = ChunkCutter()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            yield from cutter.feed(decoder.decode(block))
    yield from cutter.feed(decoder.decode(b"", final=True))
    yield from cutter.finish()


def _fill(builder: IndexBuilder, docs: Iterable[DocumentRecord], blobs: BlobAccess) -> None:
    for d in docs:
        if d.doc_id in builder.doc_ids:
            continue
        if d.length_chars >= LARGE_TEXT_BYTES:  # never the whole text in memory
            builder.add_chunks(d.doc_id, _stored_chunks(blobs.local_path(d.text_key)))
        else:
            builder.add(d.doc_id, blobs.get(d.text_key).decode("utf-8"))


def build_for(corpus: CorpusRecord, store: CorpusStore, builder: IndexBuilder | None = None) -> None:
    """Publish ``corpus``'s index unless its blob exists. ``builder``: one that already holds
    some of its Documents (those just parsed); the others are read from their text blobs.
    The builder is consumed either way. Raises ``NotFoundError`` when a text blob is gone."""
    key = index_key(corpus.corpus_id)
    if store.blobs.exists(key):
        if builder is not None:
            builder.discard()
        return
    own = builder or IndexBuilder()
    try:
        _fill(own, corpus.documents, store.blobs)
        publish_index_file(store.blobs, key, own.seal(corpus.corpus_id))
    finally:
        own.discard()


def ensure_index(corpus: CorpusRecord, store: CorpusStore) -> Path:
    """A local path of ``corpus``'s index file, rebuilt from the stored texts when its blob
    is missing (pruned, or the corpus predates per-corpus indexes). Open it with
    ``SearchIndex(path, readonly=True, immutable=True)``. Raises ``NotFoundError`` when a
    text blob is missing too (ingest the files again)."""
    key = index_key(corpus.corpus_id)
    try:
        return store.blobs.local_path(key)
    except NotFoundError:
        pass
    build_for(corpus, store)
    return store.blobs.local_path(key)
