"""What the corpus layer needs from storage: three small protocols.

:mod:`rlmx.corpus` never imports :mod:`rlmx.store`; ingestion takes anything shaped like
:class:`CorpusStore` — ``rlmx.store.Store`` satisfies it structurally (its ``meta`` is a
``MetadataStore``, its ``blobs`` a ``BlobStore``), and so does a test double.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rlmx.corpus.records import CorpusRecord, DocumentRecord

__all__ = ["BlobAccess", "CorpusStore", "DocumentCatalog"]


class BlobAccess(Protocol):
    """Byte blobs by key (``"text/<sha256>.txt"``, ``"index/v1/<corpus_id>.fts5"``)."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (readers never see a partial blob)."""
        ...

    def get(self, key: str) -> bytes:
        """The blob's bytes; raises ``NotFoundError`` when absent."""
        ...

    def exists(self, key: str) -> bool:
        """True when a blob is stored under ``key``."""
        ...

    def local_path(self, key: str) -> Path:
        """A local file holding the blob (copied into a local cache first for remote
        stores); raises ``NotFoundError`` when absent."""
        ...


class DocumentCatalog(Protocol):
    """The metadata the corpus layer reads and writes: Documents and corpora."""

    def find_document(self, raw_sha256: str, parser: str, parser_version: str) -> DocumentRecord | None:
        """The stored Document of these bytes under this parser version, or None."""
        ...

    def put_document(self, doc: DocumentRecord) -> None:
        """Record a Document (idempotent: same ``doc_id``, same content)."""
        ...

    def put_corpus(self, corpus: CorpusRecord) -> None:
        """Record a corpus and its ordered documents."""
        ...

    def get_corpus(self, corpus_id: str) -> CorpusRecord:
        """The stored corpus; raises ``NotFoundError`` when absent."""
        ...


class CorpusStore(Protocol):
    """Where ingestion stores its results: ``meta`` (documents, corpora) and ``blobs``
    (canonical texts, offset indexes, per-corpus keyword indexes)."""

    @property
    def meta(self) -> DocumentCatalog:
        """The metadata side."""
        ...

    @property
    def blobs(self) -> BlobAccess:
        """The blob side."""
        ...
