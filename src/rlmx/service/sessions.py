"""Sessions: created from server paths or uploads, ingested by a worker's job, read,
listed and deleted per tenant (an id of another tenant is :class:`~.errors.NotFound`, like
a missing one; an expired session is deleted when next read)."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..corpus import ingest
from ..corpus.ingest import corpus_id_for
from ..corpus.records import failure_kind
from ..engine.observers import notify
from ..errors import IngestError, NotFoundError
from ..ids import new_id
from ..store.base import CorpusRecord, JobRecord, MetadataStore, SessionRecord, utcnow
from .errors import BadRequest, Conflict, NotFound
from .paths import PathsMixin

__all__ = ["DOCUMENTS_PAGE", "MAX_DOCUMENTS_PAGE", "PROGRESS_EVERY_S", "SessionsMixin", "session_view"]

DOCUMENTS_PAGE = 50
"""Per-document entries a session view shows by default (``?documents=offset,limit``)."""
MAX_DOCUMENTS_PAGE = 1000
PROGRESS_EVERY_S = 0.5
"""At most one progress write per this many seconds while a session ingests."""


class _Shown:
    """What a client sees of a session's paths: an uploaded file (an input with a ``"blob"``
    key) is shown by its file name, never by where the server keeps it (in ``path``, and in
    ``error`` texts); a server path given by the client is shown as it is."""

    def __init__(self, inputs: list[dict[str, Any]], local: dict[str, str]):
        self.names: dict[str, str] = {}
        for item in inputs:
            if item.get("blob"):
                path = str(item["path"])
                name = Path(path).name
                self.names[path] = name
                self.names[local.get(path, path)] = name
        # the longest first: a folder's path is a prefix of its files'
        self._order = sorted(self.names, key=len, reverse=True)

    def path(self, path: str) -> str:
        return self.names.get(path, path)

    def text(self, text: str) -> str:
        for p in self._order:
            text = text.replace(p, self.names[p])
        return text


def _summary(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The ingestion summary of a session's per-document entries (the shape of
    :meth:`~rlmx.corpus.records.CorpusRecord.summary`)."""
    by = {k: [d for d in documents if d.get("status") == k] for k in ("READY", "SKIPPED", "DUPLICATE", "FAILED")}
    return {
        "kept": len(by["READY"]),
        "skipped": dict(Counter(str(d.get("reason")) for d in by["SKIPPED"]).most_common()),
        "duplicates": len(by["DUPLICATE"]),
        "aliases": {str(d.get("name")): d["aliases"] for d in by["READY"] if d.get("aliases")},
        "failed": dict(Counter(failure_kind(str(d.get("error"))) for d in by["FAILED"]).most_common()),
    }


class _Progress:
    """An ingestion's ``on_progress``: files parsed so far and in all, written to the
    session's ingest row at the start, then at most every :data:`PROGRESS_EVERY_S`
    seconds, and once with the summary at the end (:meth:`finish`)."""

    def __init__(self, meta: MetadataStore, session_id: str):
        self.meta, self.session_id = meta, session_id
        self.done, self._last = 0, 0.0
        self.total: int | None = None
        self._write()

    def _write(self, summary: dict[str, Any] | None = None) -> None:
        self._last = time.monotonic()
        self.meta.put_session_ingest(
            self.session_id, documents_parsed=self.done, documents_total=self.total, summary=summary
        )

    def __call__(self, path: str, done: int, total: int) -> None:
        first = self.total is None
        self.done, self.total = done, total
        if first or done == total or time.monotonic() - self._last >= PROGRESS_EVERY_S:
            self._write()

    def finish(self, summary: dict[str, Any]) -> None:
        self._write(summary)


def session_view(
    rec: SessionRecord, ingest: dict[str, Any] | None, documents: tuple[int, int] | None = None
) -> dict[str, Any]:
    """The shape of :class:`~.schemas.SessionOut` (see :meth:`SessionsMixin.session_view`);
    ``ingest``: the session's ingest row, None for a session ingested before it existed."""
    offset, limit = documents or (0, DOCUMENTS_PAGE)
    entries = rec.documents
    summary = (ingest or {}).get("summary")
    if summary is None and rec.status != "CREATING" and entries:
        summary = _summary(entries)  # an older session: computed from its entries
    end = min(len(entries), offset + limit)
    parsed = (ingest or {}).get("documents_parsed")
    total = (ingest or {}).get("documents_total")
    return {
        "session_id": rec.session_id,
        "status": rec.status,
        "error": rec.error,
        "corpus_id": rec.corpus_id,
        "documents": entries[offset:end],
        "documents_page": {
            "offset": offset,
            "limit": limit,
            "total": len(entries),
            "next_offset": end if end < len(entries) else None,
        },
        "documents_parsed": parsed if parsed is not None else (len(entries) if rec.status != "CREATING" else 0),
        "documents_total": total,
        "n_documents": sum(1 for d in entries if d.get("status") == "READY"),
        "n_failed": sum(1 for d in entries if d.get("status") == "FAILED"),
        "summary": summary if rec.status != "CREATING" else None,
        "options": rec.options,
        "created_at": rec.created_at.isoformat(),
        "expires_at": rec.expires_at.isoformat() if rec.expires_at else None,
    }


class SessionsMixin(PathsMixin):
    """Sessions of tenants: create, ingest, read, list, delete."""

    def create_session(
        self,
        tenant: str,
        inputs: list[dict[str, Any]],
        *,
        ttl_minutes: int | None = None,
        options: dict[str, Any] | None = None,
        session_id: str | None = None,
        upload_dir: str | None = None,
        queue: bool = True,
    ) -> SessionRecord:
        """Record a CREATING session and queue its ingestion (``queue=False``: the caller
        runs :meth:`ingest_session` itself)."""
        rec = SessionRecord(
            session_id=session_id or new_id("ses"),
            tenant=tenant,
            inputs=inputs,
            options=options or {},
            upload_dir=upload_dir,
            expires_at=utcnow() + timedelta(minutes=ttl_minutes) if ttl_minutes else None,
        )
        self.meta.put_session(rec)
        if queue:
            job = JobRecord(job_id=new_id("job"), kind="ingest", ref_id=rec.session_id)
            self.meta.enqueue_job(job)
            self.queue.enqueue(job.job_id, job.kind, job.ref_id)
        return rec

    def create_session_from_paths(
        self,
        tenant: str,
        docs: list[dict[str, Any]],
        *,
        ttl_minutes: int | None = None,
        options: dict[str, Any] | None = None,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> SessionRecord:
        """A session of server paths; ``include`` / ``exclude``: glob patterns overriding
        which files of a folder are skipped (kept on each input, read by the ingest job)."""
        if not docs:
            raise BadRequest("give at least one document: docs: [{source_name, path}]")
        inputs = []
        for d in docs:
            real = self.check_path(str(d.get("path", "")))
            item: dict[str, Any] = {"source_name": d.get("source_name") or real.name, "path": str(real)}
            if include:
                item["include"] = list(include)
            if exclude:
                item["exclude"] = list(exclude)
            inputs.append(item)
        return self.create_session(tenant, inputs, ttl_minutes=ttl_minutes, options=options)

    def ingest_session(self, session_id: str, *, meta: MetadataStore | None = None) -> None:
        """Ingest a session's inputs (a worker's job): READY with per-document status, or
        FAILED with the reason. Idempotent (documents are content-addressed). ``meta``: where
        the session's outcome is written (a worker's :func:`.leases.fenced_store` view)."""
        meta = meta or self.meta
        rec = self.meta.get_session(session_id)
        if rec.deleted_at is not None:
            return
        local = self._local_inputs(rec)  # uploads: this host's copies of their blobs
        back = {v: k for k, v in local.items()}
        paths = [local[str(i["path"])] for i in rec.inputs]
        names = {local[str(i["path"])]: str(i.get("source_name") or "") for i in rec.inputs}

        def source_name(path: str) -> str:
            for p, n in names.items():
                if path == p or path.startswith(p.rstrip("/") + "/"):
                    return n
            return ""

        shown = _Shown(rec.inputs, local)
        include = [str(g) for g in (rec.inputs[0].get("include") or [])] if rec.inputs else []
        exclude = [str(g) for g in (rec.inputs[0].get("exclude") or [])] if rec.inputs else []
        progress = _Progress(meta, session_id)
        t0 = time.monotonic()
        try:
            corpus = ingest(paths, self.store, include=include, exclude=exclude, on_progress=progress)
        except IngestError as e:
            notify(
                "ingest_finished",
                {"documents": 0, "characters": 0, "failed": len(paths), "seconds": time.monotonic() - t0},
            )
            rec.status, rec.error = "FAILED", shown.text(str(e))
            rec.documents = [
                {"source_name": names[p], "path": shown.path(back.get(p, p)), "status": "FAILED", "error": rec.error}
                for p in paths
            ]
            progress.finish(_summary(rec.documents))
            meta.put_session(rec)
            return
        done = {"documents": len(corpus.documents), "characters": corpus.total_chars, "failed": len(corpus.failures)}
        notify("ingest_finished", {**done, "seconds": time.monotonic() - t0})  # metrics (no tenant data)
        skipped, duplicates = corpus.skipped, corpus.duplicates
        aliases = {d.doc_id: d.meta["aliases"] for d in corpus.documents if d.meta.get("aliases")}
        corpus = self._apply_source_names(corpus, names)
        docs: list[dict[str, Any]] = [
            {
                "source_name": source_name(d.source_path),
                "path": shown.path(back.get(d.source_path, d.source_path)),
                "status": "READY",
                "doc_id": d.doc_id,
                "name": d.name,
                "chars": d.length_chars,
                "media_type": d.media_type,
                **({"aliases": aliases[d.doc_id]} if d.doc_id in aliases else {}),
            }
            for d in corpus.documents
        ]
        docs += [
            {
                "source_name": source_name(f.source_path),
                "path": shown.path(back.get(f.source_path, f.source_path)),
                "status": "FAILED",
                "error": shown.text(f.reason),
            }
            for f in corpus.failures
        ]
        docs += [
            {
                "source_name": source_name(k.source_path),
                "path": shown.path(back.get(k.source_path, k.source_path)),
                "status": "SKIPPED",
                "reason": k.reason,
            }
            for k in skipped
        ]
        docs += [
            {
                "source_name": source_name(k.source_path),
                "path": shown.path(back.get(k.source_path, k.source_path)),
                "status": "DUPLICATE",
                "name": k.name,
                "duplicate_of": k.kept_name,
                "doc_id": k.doc_id,
            }
            for k in duplicates
        ]
        rec = self.meta.get_session(session_id)
        rec.status, rec.corpus_id, rec.documents, rec.error = "READY", corpus.corpus_id, docs, None
        progress.finish(_summary(docs))  # before the READY row: a READY session has its summary
        meta.put_session(rec)

    def _local_inputs(self, rec: SessionRecord) -> dict[str, str]:
        """Each input's path on this host: an uploaded file (``"blob"`` key: stored in the blob
        store by the API server that received it) is read where it was written when it is
        there, else fetched into this host's ``uploads/<session>/`` first (a worker on
        another machine)."""
        out: dict[str, str] = {}
        for item in rec.inputs:
            path, key = str(item["path"]), item.get("blob")
            if key and not Path(path).is_file():
                dest = self.store.home / "uploads" / rec.session_id / Path(path).name
                if not dest.is_file():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    tmp = dest.with_name(f".tmp-{dest.name}")
                    tmp.write_bytes(self.store.blobs.get(str(key)))
                    tmp.replace(dest)
                path_here = str(dest)
            else:
                path_here = path
            out[path] = path_here
        return out

    def _apply_source_names(self, corpus: CorpusRecord, names: dict[str, str]) -> CorpusRecord:
        """A file given with a ``source_name`` keeps that name in the corpus."""
        changed = False
        docs = []
        for d in corpus.documents:
            want = names.get(d.source_path)
            if want and want != d.name:
                d = d.model_copy(update={"name": want})
                changed = True
            docs.append(d)
        if not changed:
            return corpus
        docs.sort(key=lambda d: d.name)
        new = CorpusRecord(corpus_id=corpus_id_for(docs), documents=docs, failures=corpus.failures)
        self.meta.put_corpus(new)
        return self.meta.get_corpus(new.corpus_id)

    def get_session(self, tenant: str, session_id: str) -> SessionRecord:
        """The tenant's live session, else NotFound (also for an expired one, which is
        deleted then)."""
        missing = NotFound(f"session {session_id!r} not found")
        try:
            rec = self.meta.get_session(session_id)
        except NotFoundError:
            raise missing from None
        if rec.tenant != tenant or rec.deleted_at is not None:
            raise missing
        if rec.expires_at is not None and rec.expires_at <= utcnow():
            self._delete(rec)
            raise missing
        return rec

    def _delete(self, rec: SessionRecord) -> None:
        rec.deleted_at = utcnow()
        self.meta.put_session(rec)
        if rec.upload_dir:
            shutil.rmtree(rec.upload_dir, ignore_errors=True)
        shutil.rmtree(self.store.home / "uploads" / rec.session_id, ignore_errors=True)
        for item in rec.inputs:
            if item.get("blob"):
                self.store.blobs.delete(str(item["blob"]))

    def delete_session(self, tenant: str, session_id: str) -> None:
        self._delete(self.get_session(tenant, session_id))

    def list_sessions(self, tenant: str, limit: int = 100) -> list[SessionRecord]:
        now = utcnow()
        return [s for s in self.meta.list_sessions(tenant, limit=limit) if s.expires_at is None or s.expires_at > now]

    def session_view(self, rec: SessionRecord, documents: tuple[int, int] | None = None) -> dict[str, Any]:
        """The client's view of ``rec`` (:class:`~.schemas.SessionOut`): one page of its
        per-document entries, ``documents = (offset, limit)`` (default the first
        :data:`DOCUMENTS_PAGE`), with the totals, the ingestion progress and summary."""
        return self.session_views([rec], documents)[0]

    def session_views(
        self, recs: list[SessionRecord], documents: tuple[int, int] | None = None
    ) -> list[dict[str, Any]]:
        """:meth:`session_view` of several sessions, their progress read in one query."""
        ingests = self.meta.get_session_ingest([r.session_id for r in recs])
        return [session_view(r, ingests.get(r.session_id), documents) for r in recs]

    def _ready_corpus(self, tenant: str, session_id: str) -> tuple[SessionRecord, CorpusRecord]:
        session = self.get_session(tenant, session_id)
        if session.status != "READY" or session.corpus_id is None:
            raise Conflict(f"session {session_id!r} is {session.status}; wait until it is READY")
        return session, self.meta.get_corpus(session.corpus_id)
