"""Store interfaces (DESIGN.md: ``MetadataStore``, ``BlobStore``) and the records they hold.

Callers use only these interfaces; the embedded implementations are SQLite
(:mod:`rlmx.store.sqlite`) and a local folder (:mod:`rlmx.store.blobs`). PostgreSQL and S3
implementations can replace them without touching callers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "BlobStore",
    "CorpusRecord",
    "DocumentRecord",
    "ExecutionRecord",
    "FailedDocument",
    "MetadataStore",
    "utcnow",
]


def utcnow() -> datetime:
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
    """An ordered set of Documents (``documents``) plus the files that failed."""

    corpus_id: str
    documents: list[DocumentRecord]
    failures: list[FailedDocument] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def total_chars(self) -> int:
        return sum(d.length_chars for d in self.documents)


class ExecutionRecord(BaseModel):
    """One execution (root or child). ``usage``/``answer``/``citations`` are JSON-able dicts."""

    execution_id: str
    corpus_id: str
    question: str
    mode: str = "answerer"
    status: str = "RUNNING"
    parent_id: str | None = None
    root_id: str | None = None
    depth: int = 0
    root_model: str = ""
    sub_model: str = ""
    answer: str | None = None
    citations: list[dict[str, Any]] = Field(default_factory=list)
    fields: dict[str, Any] | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
    budgets: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class BlobStore(ABC):
    """Byte blobs by key (``"text/<sha>.txt"``). Keys use ``/`` and ``[A-Za-z0-9._-]``."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (readers never see a partial blob)."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Return the blob. Raises :class:`~rlmx.errors.NotFoundError` when absent."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def local_path(self, key: str) -> Path:
        """Return a local file path holding the blob (materialised first for remote stores),
        so the REPL can memory-map it. Raises ``NotFoundError`` when absent."""


class MetadataStore(ABC):
    """Documents, corpora, executions (turns, sub-calls) and the LLM cache."""

    # documents and corpora
    @abstractmethod
    def find_document(self, raw_sha256: str, parser: str, parser_version: str) -> DocumentRecord | None: ...

    @abstractmethod
    def put_document(self, doc: DocumentRecord) -> None: ...

    @abstractmethod
    def get_document(self, doc_id: str) -> DocumentRecord:
        """Raises ``NotFoundError``."""

    @abstractmethod
    def put_corpus(self, corpus: CorpusRecord) -> None: ...

    @abstractmethod
    def get_corpus(self, corpus_id: str) -> CorpusRecord:
        """Raises ``NotFoundError``."""

    # executions and their trajectory
    @abstractmethod
    def put_execution(self, rec: ExecutionRecord) -> None:
        """Insert or replace the execution row."""

    @abstractmethod
    def get_execution(self, execution_id: str) -> ExecutionRecord:
        """Raises ``NotFoundError``."""

    @abstractmethod
    def list_executions(self, *, parent_id: str | None = None, limit: int = 50) -> list[ExecutionRecord]:
        """Root executions newest first when ``parent_id`` is None, else that parent's children."""

    @abstractmethod
    def add_turn(self, execution_id: str, index: int, data: dict[str, Any]) -> None:
        """Persist turn ``index`` (JSON-able) before the next turn begins."""

    @abstractmethod
    def get_turns(self, execution_id: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    def add_subcall(self, execution_id: str, data: dict[str, Any]) -> None: ...

    @abstractmethod
    def get_subcalls(self, execution_id: str) -> list[dict[str, Any]]: ...

    # LLM cache
    @abstractmethod
    def cache_get(self, key: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def cache_put(self, key: str, value: dict[str, Any]) -> None: ...
