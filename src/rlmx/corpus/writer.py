"""Writing a prepared Document: text blobs, then the metadata row; a corpus's index at the end.

The metadata row is written last: it is the commit point, so a stored Document always
points at stored text (a crash in between leaves only unreferenced, content-addressed
blobs, which the next ingestion reuses). Texts parsed in this call are indexed as they are
written into the corpus's :class:`~rlmx.corpus.corpus_index.IndexBuilder`;
:meth:`Writer.finish` publishes the index blob (before the corpus row is recorded) unless
the corpus already has one, reading the texts of cached Documents from the blob store.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlmx.corpus.corpus_index import IndexBuilder, build_for
from rlmx.corpus.parsers import Parser
from rlmx.corpus.prepare import Prepared
from rlmx.corpus.stream import Scan, TextStream

if TYPE_CHECKING:
    from rlmx.corpus.ports import BlobAccess, CorpusStore
    from rlmx.corpus.records import CorpusRecord, DocumentRecord

__all__ = ["BLOB_THREADS", "MAX_PENDING", "Writer"]

BLOB_THREADS = 2
MAX_PENDING = 32  # Documents whose blobs are being written, at most


class Writer:
    """Stores canonical texts (blobs, metadata row) for one ingestion call, and the
    corpus's keyword index (:meth:`finish`). Always :meth:`close` it."""

    def __init__(self, store: CorpusStore):
        self.store = store
        self._builder: IndexBuilder | None = None
        self.background = False
        """True: blobs are written (and fsynced) by :data:`BLOB_THREADS` threads while the
        caller goes on, each Document row once its blobs are stored. Set it only once no
        process will be forked any more (threads and ``fork`` do not mix)."""
        self._threads: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[list[Future[None]], DocumentRecord]] = deque()
        self._indexer: ThreadPoolExecutor | None = None  # one thread: adds stay in order
        self._indexing: list[Future[int]] = []

    def close(self) -> None:
        """Drop the index being built, if any (its temporary file); stop the blob threads
        (Documents whose rows were not recorded yet stay unrecorded)."""
        for pool in (self._threads, self._indexer):
            if pool is not None:
                pool.shutdown(wait=True)
        self._threads = self._indexer = None
        self._pending.clear()
        self._indexing.clear()
        if self._builder is not None:
            self._builder.discard()
            self._builder = None

    def _put(self, key: str, data: bytes) -> list[Future[None]]:
        if not self.background:
            self.store.blobs.put(key, data)
            return []
        if self._threads is None:
            self._threads = ThreadPoolExecutor(BLOB_THREADS, thread_name_prefix="rlmx-blobs")
        return [self._threads.submit(self.store.blobs.put, key, data)]

    def _record(self, futures: list[Future[None]], record: DocumentRecord) -> None:
        if futures:
            self._pending.append((futures, record))
        else:
            self.store.meta.put_document(record)
        self._flush(wait=False)

    def _indexed(self) -> None:
        """Wait for the texts queued for the index (raises what indexing raised)."""
        futures, self._indexing = self._indexing, []
        for f in futures:
            f.result()

    def _flush(self, wait: bool) -> None:
        """Record the Documents whose blobs are stored (all of them when ``wait``; the
        oldest also when more than :data:`MAX_PENDING` wait). Raises what a blob write raised."""
        while self._pending:
            futures, record = self._pending[0]
            if not (wait or len(self._pending) > MAX_PENDING or all(f.done() for f in futures)):
                break
            self._pending.popleft()
            for f in futures:
                f.result()
            self.store.meta.put_document(record)

    def reuse(self, hit: DocumentRecord, name: str, source_path: str) -> DocumentRecord | None:
        """The cached Document under this name, or None when its blobs went missing."""
        blobs = self.store.blobs
        if not blobs.exists(hit.text_key) or (hit.index_key and not blobs.exists(hit.index_key)):
            return None
        return hit.model_copy(update={"name": name, "source_path": source_path})

    def write(
        self,
        *,
        doc_id: str,
        name: str,
        source_path: str,
        size: int,
        raw_sha256: str,
        parser: Parser,
        prepared: Prepared,
    ) -> DocumentRecord:
        """Store the blobs, index the text, then record the Document (the commit point)."""
        from rlmx.corpus.records import DocumentRecord

        text_key = f"text/{prepared.text_sha256}.txt"
        blobs = self.store.blobs
        futures: list[Future[None]] = []
        if not blobs.exists(text_key):
            futures += self._put(text_key, prepared.text.encode("utf-8"))
        index_key = None
        if prepared.offset_index is not None:
            index_key = f"text/{prepared.text_sha256}.idx"
            if not blobs.exists(index_key):
                futures += self._put(index_key, prepared.offset_index)
        if self._builder is None:
            self._builder = IndexBuilder()
        if self.background:  # FTS5 tokenises without the GIL: it overlaps the next file
            if self._indexer is None:
                self._indexer = ThreadPoolExecutor(1, thread_name_prefix="rlmx-index")
            self._indexing.append(self._indexer.submit(self._builder.add, doc_id, prepared.text))
        else:
            self._builder.add(doc_id, prepared.text)
        record = DocumentRecord(
            doc_id=doc_id,
            name=name,
            source_path=source_path,
            media_type=prepared.media_type,
            size_bytes=size,
            raw_sha256=raw_sha256,
            text_sha256=prepared.text_sha256,
            length_chars=len(prepared.text),
            parser=parser.name,
            parser_version=parser.version,
            encoding=prepared.encoding,
            text_key=text_key,
            index_key=index_key,
            meta=prepared.meta,
        )
        self._record(futures, record)
        return record

    def write_stream(
        self,
        *,
        doc_id: str,
        name: str,
        source_path: str,
        scanned: Scan,
        parser: Parser,
        media_type: str,
        meta: dict[str, Any],
    ) -> DocumentRecord:
        """:meth:`write` for a large UTF-8 text file checked by :func:`~rlmx.corpus.stream.scan`:
        canonicalised, hashed, indexed and stored in blocks (:class:`~rlmx.corpus.stream.TextStream`).
        Raises ``OSError``/``ValueError`` (unreadable, or changed since the scan: nothing is
        recorded) and ``StoreError``."""
        from rlmx.corpus.records import DocumentRecord

        stream = TextStream(Path(source_path), scanned.raw_sha256)
        try:
            self._indexed()
            if self._builder is None:
                self._builder = IndexBuilder()
            try:
                self._builder.add_chunks(doc_id, stream.chunks())
            except BaseException:  # a half-added document: index this corpus from the blobs
                self._builder.discard()
                self._builder = None
                raise
            text_key = f"text/{stream.text_sha256}.txt"
            blobs = self.store.blobs
            if not blobs.exists(text_key):
                _put_file(blobs, text_key, stream.text_path)
            index_key = None
            if stream.offset_index is not None:
                index_key = f"text/{stream.text_sha256}.idx"
                if not blobs.exists(index_key):
                    blobs.put(index_key, stream.offset_index)
        finally:
            stream.close()
        record = DocumentRecord(
            doc_id=doc_id,
            name=name,
            source_path=source_path,
            media_type=media_type,
            size_bytes=scanned.size,
            raw_sha256=scanned.raw_sha256,
            text_sha256=stream.text_sha256,
            length_chars=stream.length_chars,
            parser=parser.name,
            parser_version=parser.version,
            encoding=scanned.encoding,
            text_key=text_key,
            index_key=index_key,
            meta=meta,
        )
        self.store.meta.put_document(record)
        return record

    def forget(self, doc_ids: set[str]) -> None:
        """Leave ``doc_ids`` out of the corpus index (duplicates dropped after parsing): a
        builder holding any of them is discarded, and :meth:`finish` indexes from the blobs."""
        self._indexed()
        if self._builder is not None and doc_ids & self._builder.doc_ids:
            self._builder.discard()
            self._builder = None

    def finish(self, corpus: CorpusRecord) -> None:
        """Publish ``corpus``'s index blob unless it exists (texts parsed here are already
        indexed; cached ones are read from their blobs). Raises ``NotFoundError`` when a
        cached Document's text blob is gone, ``StoreError`` when the blob cannot be written."""
        self._flush(wait=True)
        self._indexed()
        builder, self._builder = self._builder, None
        build_for(corpus, self.store, builder)


def _put_file(blobs: BlobAccess, key: str, path: Path) -> None:
    """Store a file as a blob without reading it whole where the store can (``put_file``)."""
    put_file = getattr(blobs, "put_file", None)
    if callable(put_file):
        put_file(key, path)
    else:
        blobs.put(key, path.read_bytes())
