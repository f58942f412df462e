"""Writing a prepared Document: text blobs, keyword index, then the metadata row.

The metadata row is written last: it is the commit point, so a stored Document always
points at stored text (a crash in between leaves only unreferenced, content-addressed blobs
and index rows, which the next ingestion reuses).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlmx.corpus.index import SearchIndex
from rlmx.corpus.parsers import Parser
from rlmx.corpus.prepare import Prepared

if TYPE_CHECKING:
    from rlmx.store import Store
    from rlmx.store.base import DocumentRecord

__all__ = ["Writer"]


class Writer:
    """Stores canonical texts (blobs, FTS index, metadata row) for one ingestion call."""

    def __init__(self, store: Store):
        self.store = store
        self.index = SearchIndex(store.index_path)

    def close(self) -> None:
        self.index.close()

    def reuse(self, hit: DocumentRecord, name: str, source_path: str) -> DocumentRecord | None:
        """The cached Document under this name, or None when its blobs went missing."""
        blobs = self.store.blobs
        if not blobs.exists(hit.text_key) or (hit.index_key and not blobs.exists(hit.index_key)):
            return None
        if not self.index.has(hit.doc_id):  # index file deleted or rebuilt: re-index only
            self.index.add(hit.doc_id, blobs.get(hit.text_key).decode("utf-8"))
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
        from rlmx.store.base import DocumentRecord

        text_key = f"text/{prepared.text_sha256}.txt"
        blobs = self.store.blobs
        if not blobs.exists(text_key):
            blobs.put(text_key, prepared.text.encode("utf-8"))
        index_key = None
        if prepared.offset_index is not None:
            index_key = f"text/{prepared.text_sha256}.idx"
            if not blobs.exists(index_key):
                blobs.put(index_key, prepared.offset_index)
        self.index.add(doc_id, prepared.text)
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
