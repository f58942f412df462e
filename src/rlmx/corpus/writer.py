"""Writing a prepared Document: text blobs, then the metadata row; a corpus's index at the end.

The metadata row is written last: it is the commit point, so a stored Document always
points at stored text (a crash in between leaves only unreferenced, content-addressed
blobs, which the next ingestion reuses). Texts parsed in this call are indexed as they are
written into the corpus's :class:`~rlmx.corpus.corpus_index.IndexBuilder`;
:meth:`Writer.finish` publishes the index blob (before the corpus row is recorded) unless
the corpus already has one, reading the texts of cached Documents from the blob store.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlmx.corpus.corpus_index import IndexBuilder, build_for
from rlmx.corpus.parsers import Parser
from rlmx.corpus.prepare import Prepared
from rlmx.corpus.stream import Scan, TextStream

if TYPE_CHECKING:
    from rlmx.corpus.ports import BlobAccess, CorpusStore
    from rlmx.corpus.records import CorpusRecord, DocumentRecord

__all__ = ["Writer"]


class Writer:
    """Stores canonical texts (blobs, metadata row) for one ingestion call, and the
    corpus's keyword index (:meth:`finish`). Always :meth:`close` it."""

    def __init__(self, store: CorpusStore):
        self.store = store
        self._builder: IndexBuilder | None = None

    def close(self) -> None:
        """Drop the index being built, if any (its temporary file)."""
        if self._builder is not None:
            self._builder.discard()
            self._builder = None

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
        if not blobs.exists(text_key):
            blobs.put(text_key, prepared.text.encode("utf-8"))
        index_key = None
        if prepared.offset_index is not None:
            index_key = f"text/{prepared.text_sha256}.idx"
            if not blobs.exists(index_key):
                blobs.put(index_key, prepared.offset_index)
        if self._builder is None:
            self._builder = IndexBuilder()
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
        self.store.meta.put_document(record)
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
        if self._builder is not None and doc_ids & self._builder.doc_ids:
            self._builder.discard()
            self._builder = None

    def finish(self, corpus: CorpusRecord) -> None:
        """Publish ``corpus``'s index blob unless it exists (texts parsed here are already
        indexed; cached ones are read from their blobs). Raises ``NotFoundError`` when a
        cached Document's text blob is gone, ``StoreError`` when the blob cannot be written."""
        builder, self._builder = self._builder, None
        build_for(corpus, self.store, builder)


def _put_file(blobs: BlobAccess, key: str, path: Path) -> None:
    """Store a file as a blob without reading it whole where the store can (``put_file``)."""
    put_file = getattr(blobs, "put_file", None)
    if callable(put_file):
        put_file(key, path)
    else:
        blobs.put(key, path.read_bytes())
