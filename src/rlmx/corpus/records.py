"""The records of ingestion: :class:`DocumentRecord`, :class:`FailedDocument`,
:class:`SkippedFile`, :class:`DuplicateFile`, :class:`CorpusRecord` (pydantic models).

They belong to the corpus layer, which produces them; the store persists them
(``rlmx.store.base`` re-exports them under their old names). This module imports neither
the store nor the rest of :mod:`rlmx.corpus`, and :mod:`rlmx.corpus` does not import it
eagerly (pydantic loads on first use: the REPL process imports ``rlmx.corpus``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["CorpusRecord", "DocumentRecord", "DuplicateFile", "FailedDocument", "SkippedFile", "failure_kind", "utcnow"]


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


class SkippedFile(BaseModel):
    """A file of a folder walk or glob that is not a document (a script, stylesheet,
    search index...: :data:`rlmx.corpus.filter.SKIP_RULES`), or excluded by a pattern."""

    source_path: str
    reason: str


class DuplicateFile(BaseModel):
    """A file whose canonical text (``text_sha256``) equals that of a kept document: the
    corpus holds the text once, as ``kept_name`` (whose ``meta["aliases"]`` lists ``name``)."""

    source_path: str
    name: str
    kept_name: str
    doc_id: str


def failure_kind(reason: str) -> str:
    """A failure reason without its particulars (the text before the first ``:``)."""
    return reason.split(":")[0].strip()


class CorpusRecord(BaseModel):
    """An ordered set of Documents (``documents``) plus the files that failed.

    ``corpus_id`` = ``"cor_" + sha256`` over the ordered ``(doc_id, name)`` pairs (see
    :func:`rlmx.corpus.ingest.corpus_id_for`); its keyword index is the blob
    ``index/v1/<corpus_id>.fts5`` (:mod:`rlmx.corpus.corpus_index`).

    ``skipped`` and ``duplicates``: what the ingestion that returned this record left out
    (not stored: a corpus read back from the store has them empty; the documents' aliases
    are in ``meta["aliases"]`` of the record :func:`~rlmx.corpus.ingest.ingest` returns)."""

    corpus_id: str
    documents: list[DocumentRecord]
    failures: list[FailedDocument] = Field(default_factory=list)
    skipped: list[SkippedFile] = Field(default_factory=list)
    duplicates: list[DuplicateFile] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)

    def summary(self) -> dict[str, Any]:
        """``{"kept": n, "skipped": {reason: n}, "duplicates": n, "aliases": {kept name:
        [other names]}, "failed": {reason: n}}`` (reasons most frequent first)."""
        aliases: dict[str, list[str]] = {}
        for d in self.duplicates:
            aliases.setdefault(d.kept_name, []).append(d.name)
        return {
            "kept": len(self.documents),
            "skipped": _counts(s.reason for s in self.skipped),
            "duplicates": len(self.duplicates),
            "aliases": aliases,
            "failed": _counts(failure_kind(f.reason) for f in self.failures),
        }

    @property
    def total_chars(self) -> int:
        """Code points of canonical text over all documents."""
        return sum(d.length_chars for d in self.documents)


def _counts(items: Iterable[str]) -> dict[str, int]:
    return dict(Counter(items).most_common())
