"""The records of the service's tables (issue 4): API keys, sessions, which tenant owns an
execution, and the work queue's jobs. Re-exported by :mod:`rlmx.store.base`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from rlmx.corpus.records import utcnow

__all__ = ["ApiKeyRecord", "JobRecord", "ServiceExecutionRecord", "SessionRecord"]


class ApiKeyRecord(BaseModel):
    """An API key of the service: only ``key_hmac`` (HMAC-SHA256 with the server's pepper,
    hex) is stored, never the key. ``key_id`` names it for listing and revocation."""

    key_id: str
    tenant: str
    key_hmac: str
    name: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class SessionRecord(BaseModel):
    """A service session: a tenant's corpus plus configuration (DESIGN.md vocabulary).

    ``status``: ``CREATING``, ``READY`` or ``FAILED``. ``inputs``: what was asked for
    (``{"source_name", "path"}``); ``documents``: per-document status
    (``{"source_name", "path", "status": READY|FAILED, "doc_id"?, "name"?, "chars"?,
    "error"?}``). ``upload_dir``: folder of uploaded files (removed on delete).
    ``deleted_at`` set: the session is gone for its tenant (404).
    """

    session_id: str
    tenant: str
    status: str = "CREATING"
    corpus_id: str | None = None
    inputs: list[dict[str, Any]] = Field(default_factory=list)
    documents: list[dict[str, Any]] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    upload_dir: str | None = None
    expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    deleted_at: datetime | None = None


class ServiceExecutionRecord(BaseModel):
    """Which tenant and session a root execution belongs to, and the request that made it
    (``mode``: ``answerer`` or ``runtime``)."""

    execution_id: str
    tenant: str
    session_id: str
    mode: str
    request: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)


class JobRecord(BaseModel):
    """A unit of work in the queue. ``kind``: ``ingest`` (``ref_id`` = session id) or
    ``answerer`` (``ref_id`` = execution id). ``state``: ``QUEUED``, ``RUNNING`` (leased by
    ``lease_owner`` until ``lease_expires_at``) or ``DONE``. ``attempts`` counts claims."""

    job_id: str
    kind: str
    ref_id: str
    state: str = "QUEUED"
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    attempts: int = 0
    cancel_requested: bool = False
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
