"""The records of ingestion: :class:`DocumentRecord`, :class:`FailedDocument`,
:class:`CorpusRecord` (pydantic models).

They belong to the corpus layer, which produces them; the store persists them
(``rlmx.store.base`` re-exports them under their old names). This module imports neither
the store nor the rest of :mod:`rlmx.corpus`, and :mod:`rlmx.corpus` does not import it
eagerly (pydantic loads on first use: the REPL process imports ``rlmx.corpus``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["CorpusRecord", "DocumentRecord", "FailedDocument", "utcnow"]


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


class DocumentRecord(BaseModel):
    """A parsed Document (content-addressed).

    ``doc_id`` = ``"doc_" + sha256(raw_sha256 + parser + parser_version)[:20]``, so
    re-ingesting an unchanged file (same bytes, same parser version) is a cache hit.
    ``length_chars``: code points of canonical text; ``size_bytes``: raw file size.
    ``text_key`` / ``index_key``: blob keys of the canonical text and its offset index
    (``index_key`` is None for ASCII texts, see :mod:`rlmx.corpus.canonical`).
    """

    doc_id: str
    name: str
    source_path: str
    media_type: str
    size_bytes: int
    raw_sha256: str
    text_sha256: str
    length_chars: int
    parser: str
    parser_version: str
    encoding: str | None = None
    text_key: str
    index_key: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)


class FailedDocument(BaseModel):
    """A file that could not become a Document, with the reason (never raised)."""

    source_path: str
    reason: str
    media_type: str | None = None


class CorpusRecord(BaseModel):
    """An ordered set of Documents (``documents``) plus the files that failed.

    ``corpus_id`` = ``"cor_" + sha256`` over the ordered ``(doc_id, name)`` pairs (see
    :func:`rlmx.corpus.ingest.corpus_id_for`); its keyword index is the blob
    ``index/v1/<corpus_id>.fts5`` (:mod:`rlmx.corpus.corpus_index`)."""

    corpus_id: str
    documents: list[DocumentRecord]
    failures: list[FailedDocument] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def total_chars(self) -> int:
        """Code points of canonical text over all documents."""
        return sum(d.length_chars for d in self.documents)
