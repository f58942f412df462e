"""Service tables of the SQL store (issue 4): API keys, sessions, the executions of the
service, and progress events. Mixed into :class:`~rlmx.store.sql.SQLMetadataStore`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select

from rlmx.errors import NotFoundError
from rlmx.store import schema as t
from rlmx.store.base import ApiKeyRecord, ServiceExecutionRecord, SessionRecord, utcnow
from rlmx.store.sql_core import SQLCore

__all__ = ["ServiceMixin"]


class ServiceMixin(SQLCore):
    """API keys, sessions, service executions and events (see :class:`MetadataStore`)."""

    # --- API keys ------------------------------------------------------------------------
    def put_api_key(self, rec: ApiKeyRecord) -> None:
        """Insert the key (its HMAC must be new, else ``StoreError``)."""
        with self._write() as conn:
            conn.execute(t.api_keys.insert().values(**rec.model_dump()))

    def find_api_key(self, key_hmac: str) -> ApiKeyRecord | None:
        """The key with this HMAC (revoked or not), or None."""
        with self._read() as conn:
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.key_hmac == key_hmac)).first()
        return None if row is None else ApiKeyRecord.model_validate(dict(row._mapping))

    def revoke_api_key(self, key_id: str) -> bool:
        """Mark the key revoked (kept when it already was); False when no such key."""
        k = t.api_keys
        with self._write() as conn:
            res = conn.execute(
                k.update().where(k.c.key_id == key_id, k.c.revoked_at.is_(None)).values(revoked_at=utcnow())
            )
            if res.rowcount:
                return True
            return conn.execute(select(k.c.key_id).where(k.c.key_id == key_id)).first() is not None

    def list_api_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        """Keys oldest first, of ``tenant`` only when given."""
        k = t.api_keys
        q = select(k).order_by(k.c.created_at)
        if tenant is not None:
            q = q.where(k.c.tenant == tenant)
        with self._read() as conn:
            return [ApiKeyRecord.model_validate(dict(r._mapping)) for r in conn.execute(q)]

    # --- sessions ------------------------------------------------------------------------
    def put_session(self, rec: SessionRecord) -> None:
        """Insert or replace the session row (``updated_at`` set to now, ``created_at`` kept)."""
        rec.updated_at = utcnow()
        with self._write() as conn:
            self._upsert(conn, t.service_sessions, rec.model_dump(), ["session_id"], keep=("created_at",))

    def get_session(self, session_id: str) -> SessionRecord:
        """The session (deleted ones too). Raises ``NotFoundError``."""
        s = t.service_sessions
        with self._read() as conn:
            row = conn.execute(select(s).where(s.c.session_id == session_id)).first()
        if row is None:
            raise NotFoundError(f"session {session_id!r} not found")
        return SessionRecord.model_validate(dict(row._mapping))

    def list_sessions(self, tenant: str, *, limit: int = 100) -> list[SessionRecord]:
        """The tenant's sessions that are not deleted, newest first, at most ``limit``."""
        s = t.service_sessions
        q = (
            select(s)
            .where(s.c.tenant == tenant, s.c.deleted_at.is_(None))
            .order_by(s.c.created_at.desc(), s.c.session_id.desc())
            .limit(max(0, int(limit)))
        )
        with self._read() as conn:
            return [SessionRecord.model_validate(dict(r._mapping)) for r in conn.execute(q)]

    def put_session_ingest(
        self,
        session_id: str,
        *,
        documents_parsed: int,
        documents_total: int | None,
        summary: dict[str, Any] | None = None,
    ) -> None:
        """Record a session's ingestion progress (files parsed so far, files in all: None
        while unknown) and, once it is done, its summary (see ``service_session_ingest``)."""
        row = {
            "session_id": session_id,
            "documents_parsed": int(documents_parsed),
            "documents_total": None if documents_total is None else int(documents_total),
            "summary": summary,
            "updated_at": utcnow(),
        }
        with self._write() as conn:
            self._upsert(conn, t.service_session_ingest, row, ["session_id"])

    def get_session_ingest(self, session_ids: list[str]) -> dict[str, dict[str, Any]]:
        """``{session_id: {"documents_parsed", "documents_total", "summary"}}`` of those of
        ``session_ids`` whose ingestion has started (others are absent)."""
        if not session_ids:
            return {}
        g = t.service_session_ingest
        q = select(g.c.session_id, g.c.documents_parsed, g.c.documents_total, g.c.summary).where(
            g.c.session_id.in_(list(session_ids))
        )
        with self._read() as conn:
            return {
                r.session_id: {
                    "documents_parsed": r.documents_parsed,
                    "documents_total": r.documents_total,
                    "summary": r.summary,
                }
                for r in conn.execute(q)
            }

    def tenant_has_document(self, tenant: str, doc_id: str) -> bool:
        """True when a live (not deleted, not expired) session of ``tenant`` holds it."""
        s, m = t.service_sessions, t.corpus_documents
        q = (
            select(m.c.doc_id)
            .join(s, s.c.corpus_id == m.c.corpus_id)
            .where(
                s.c.tenant == tenant,
                s.c.deleted_at.is_(None),
                or_(s.c.expires_at.is_(None), s.c.expires_at > utcnow()),
                m.c.doc_id == doc_id,
            )
            .limit(1)
        )
        with self._read() as conn:
            return conn.execute(q).first() is not None

    # --- executions of the service -------------------------------------------------------
    def put_service_execution(self, rec: ServiceExecutionRecord) -> None:
        """Insert or replace the row (``created_at`` kept)."""
        with self._write() as conn:
            self._upsert(conn, t.service_executions, rec.model_dump(), ["execution_id"], keep=("created_at",))

    def get_service_execution(self, execution_id: str) -> ServiceExecutionRecord | None:
        """The row, or None when the execution is not the service's."""
        e = t.service_executions
        with self._read() as conn:
            row = conn.execute(select(e).where(e.c.execution_id == execution_id)).first()
        return None if row is None else ServiceExecutionRecord.model_validate(dict(row._mapping))

    def abandon_subcalls_after(self, execution_id: str, turn: int) -> int:
        """Mark the sub-call records of turns after ``turn`` ``"abandoned": true`` (kept: what
        they cost was spent); returns how many were newly marked."""
        s = t.subcalls
        n = 0
        with self._write() as conn:
            rows = conn.execute(select(s.c.id, s.c.data).where(s.c.execution_id == execution_id)).all()
            for r in rows:
                data = dict(r.data or {})
                if int(data.get("turn") or 0) > turn and not data.get("abandoned"):
                    data["abandoned"] = True
                    conn.execute(s.update().where(s.c.id == r.id).values(data=data))
                    n += 1
        return n

    # --- events --------------------------------------------------------------------------
    def add_event(self, execution_id: str, kind: str, data: dict[str, Any]) -> int:
        """Append an event; returns its id (increasing)."""
        with self._write() as conn:
            res = conn.execute(
                t.events.insert().values(execution_id=execution_id, kind=kind, data=data, created_at=utcnow())
            )
            pk = res.inserted_primary_key
        return int(pk[0]) if pk else 0

    def get_events(self, execution_id: str, *, after: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        """Events with id > ``after``, oldest first: ``{"id", "kind", "data", "created_at"}``."""
        e = t.events
        q = (
            select(e.c.id, e.c.kind, e.c.data, e.c.created_at)
            .where(e.c.execution_id == execution_id, e.c.id > after)
            .order_by(e.c.id)
            .limit(max(1, int(limit)))
        )
        with self._read() as conn:
            return [
                {"id": r.id, "kind": r.kind, "data": r.data, "created_at": r.created_at.isoformat()}
                for r in conn.execute(q)
            ]
