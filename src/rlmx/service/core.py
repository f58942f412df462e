"""The service's operations, shared by the HTTP API (:mod:`.app`) and the MCP server.

Every operation takes the caller's tenant; an id of another tenant raises :class:`NotFound`
with the same message as a missing one. Errors are :class:`ServiceError` subclasses that
carry their HTTP status (400, 403, 404, 409, 413, 429); the engine's errors are translated
here.

Jobs run under a lease (:mod:`.worker`): :meth:`Service.job_store` gives the holder of a
job's lease a store whose writes — the engine's (execution record, turns, sub-calls,
snapshots) and the service's (status, events) — count only while it still holds the lease,
so a worker that lost its job to another never overwrites the new owner's records.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..api import RLM
from ..config import Settings
from ..corpus import context_spec, ingest
from ..corpus.canonical import TextReader
from ..corpus.ingest import corpus_id_for
from ..engine.orchestrator import Engine
from ..engine.resume import stored_usage
from ..engine.runtime import RuntimeConflict, RuntimeExecution, ToolResultError
from ..engine.schema import OutputSchema
from ..engine.trace import load_trace
from ..engine.verify import CitationCheck, verify_citations
from ..errors import ConfigError, IngestError, NotFoundError, RlmxError
from ..ids import new_id
from ..lm.base import LMClient
from ..lm.registry import resolve_models
from ..store import Store, open_store
from ..store.base import (
    BlobStore,
    CorpusRecord,
    ExecutionRecord,
    JobRecord,
    MetadataStore,
    ServiceExecutionRecord,
    SessionRecord,
    utcnow,
)
from ..types import SpanRef, Status, span_checksum
from .auth import KeyManager, load_pepper
from .settings import ServiceSettings

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "Service",
    "ServiceError",
    "TooLarge",
    "TooMany",
]

log = logging.getLogger("rlmx.service")

TERMINAL = {s.value for s in Status} - {Status.RUNNING.value}
MAX_SPAN_CHARS = 1_000_000
MAX_VERIFY_CITATIONS = 1000
"""Citations one verify request may check."""
MAX_VERIFY_CHARS = 10 * MAX_SPAN_CHARS
"""Characters one verify request may read (the sum of its citations' in-range spans)."""
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


class ServiceError(Exception):
    """An error answered to the client with ``status`` and a message saying what to do."""

    status = 400

    def __init__(self, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers


class BadRequest(ServiceError):
    status = 400


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class TooLarge(ServiceError):
    status = 413


class TooMany(ServiceError):
    status = 429


class _LeaseBlobs(BlobStore):
    """The blob store as the holder of a job's lease writes it: a put or delete is made only
    while the lease is held (checked just before; the window is one query), else skipped
    and ``lost()`` called."""

    def __init__(self, inner: BlobStore, held: Callable[[], bool], lost: Callable[[], None]):
        self.inner = inner
        self._held = held
        self._lost = lost

    def _ok(self) -> bool:
        if self._held():
            return True
        self._lost()
        return False

    def put(self, key: str, data: bytes) -> None:
        if self._ok():
            self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def delete(self, key: str) -> None:
        if self._ok():
            self.inner.delete(key)

    def local_path(self, key: str) -> Path:
        return self.inner.local_path(key)


def _once(fn: Callable[[], None] | None) -> Callable[[], None]:
    done = threading.Event()

    def call() -> None:
        if not done.is_set():
            done.set()
            if fn is not None:
                fn()

    return call


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return out


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def safe_filename(name: str, taken: set[str]) -> str:
    """A file name for an upload: its last path component, odd characters replaced, made
    unique among ``taken``."""
    base = _SAFE_NAME.sub("_", Path(name.replace("\\", "/")).name).strip(" .") or "upload"
    base = base[:120]
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    cand, n = base, 1
    while cand.lower() in taken:
        n += 1
        cand = f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}"
    taken.add(cand.lower())
    return cand


class Service:
    """Sessions, executions (answerer and runtime), spans and citations for tenants, over
    one :class:`~rlmx.store.Store`. ``notice(message)`` receives one-line notices (e.g. a
    generated pepper)."""

    def __init__(
        self,
        settings: ServiceSettings | None = None,
        store: Store | None = None,
        *,
        notice: Callable[[str], None] | None = None,
    ):
        self.settings = settings or ServiceSettings()
        self.store = store or open_store(self.settings.home)
        self.meta = self.store.meta
        self.keys = KeyManager(self.meta, load_pepper(self.settings, notice))
        self.engine_settings = Settings(home=self.store.home)
        root, sub, _ = resolve_models(None, None, settings=self.engine_settings)
        self.default_models = (root, sub)
        extra = [m.strip() for m in self.settings.service_models.split(",") if m.strip()]
        self.offered = list(dict.fromkeys([root, sub, "baseline", *extra]))
        self.runtimes: dict[str, RuntimeExecution] = {}
        self._runtime_slots: dict[str, str] = {}  # execution id -> tenant, REPLs live or starting
        self._runtime_locks: dict[str, asyncio.Lock] = {}
        self._wakers: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._wake_lock = threading.Lock()

    def close(self) -> None:
        self.store.close()

    # -- waking in-process workers --------------------------------------------------------------
    def add_waker(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        with self._wake_lock:
            self._wakers.append((loop, event))

    def remove_waker(self, event: asyncio.Event) -> None:
        with self._wake_lock:
            self._wakers = [(lp, ev) for lp, ev in self._wakers if ev is not event]

    def wake(self) -> None:
        """Tell in-process workers that a job was queued (others poll)."""
        with self._wake_lock:
            wakers = list(self._wakers)
        for loop, ev in wakers:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # loop closed
                pass

    # -- models ---------------------------------------------------------------------------------
    def resolve_models(self, models: dict[str, Any] | None) -> dict[str, str]:
        """``{"root", "sub"}`` specs for a request; each must be offered by this server
        (``RLMX_SERVICE_MODELS``, the default pair, ``baseline``), else BadRequest."""
        models = models or {}
        root = models.get("root") or None
        sub = models.get("sub") or None
        if root is None and sub is None:
            root, sub = self.default_models
        elif root is None:
            root = self.default_models[0]
        try:
            root, sub, _ = resolve_models(root, sub, settings=self.engine_settings)
        except ConfigError as e:
            raise BadRequest(str(e)) from None
        for spec in (root, sub):
            if spec not in self.offered:
                raise BadRequest(f"model {spec!r} is not offered by this server; offered: {self.offered}")
        return {"root": root, "sub": sub}

    def make_rlm(
        self,
        models: dict[str, Any] | None,
        budgets: dict[str, Any] | None,
        *,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        store: Store | None = None,
    ) -> RLM:
        """An :class:`~rlmx.api.RLM` for a request (models checked by :meth:`resolve_models`)
        on ``store`` (default: the service's)."""
        specs = self.resolve_models(models)
        root, sub = specs["root"], specs["sub"]
        try:
            rlm = RLM(
                model=root,
                sub_model=sub,
                budgets=budgets or {},
                settings=self.engine_settings,
                on_event=on_event,
                notice=lambda _m: None,
            )
        except ConfigError as e:
            raise BadRequest(str(e)) from None
        except ValueError as e:  # pydantic validation of budgets
            raise BadRequest(f"invalid budgets: {e}") from None
        rlm._store = store or self.store
        return rlm

    # -- leases -----------------------------------------------------------------------------
    def job_store(self, job: JobRecord, on_lost: Callable[[], None] | None = None) -> Store:
        """The store as the holder of ``job``'s lease (its ``lease_owner`` under claim
        ``attempts``) writes it: every metadata write is committed only while the lease is
        held, a blob is written only while it is (see :class:`_LeaseBlobs`); otherwise the
        write changes nothing and ``on_lost()`` is called once. A job with no lease owner
        gets the plain store."""
        if job.lease_owner is None:
            return self.store
        lost = _once(on_lost)
        meta = self.meta.fenced(job.job_id, job.lease_owner, job.attempts, lost)
        owner, attempt = job.lease_owner, job.attempts
        blobs = _LeaseBlobs(self.store.blobs, lambda: self.meta.holds_lease(job.job_id, owner, attempt), lost)
        return Store(home=self.store.home, meta=meta, blobs=blobs, index_path=self.store.index_path)

    # -- sessions -------------------------------------------------------------------------------
    def check_path(self, raw: str) -> Path:
        """The resolved path when it lies under ``RLMX_ALLOWED_PATHS`` and neither lies under
        nor contains the store's home (uploads, key pepper, snapshot key; else Forbidden),
        and exists (else BadRequest). A folder's walk does not leave the folder (see
        :mod:`rlmx.corpus.collect`)."""
        roots = self.settings.allowed_roots()
        where = "a folder listed in RLMX_ALLOWED_PATHS on the server" if roots else "RLMX_ALLOWED_PATHS (empty)"
        try:
            given = Path(raw).expanduser()
            absolute = Path(os.path.abspath(given))
            real = given.resolve()
        except (ValueError, OSError, RuntimeError):
            raise BadRequest(f"invalid path {raw!r}") from None
        if not roots or not _under(absolute, roots) or not _under(real, roots):
            raise Forbidden(f"path {raw!r} is not under {where}; upload the files instead (multipart)")
        homes = list(dict.fromkeys([Path(os.path.abspath(self.store.home)), self.store.home.resolve()]))
        for p in (absolute, real):
            if _under(p, homes) or any(_under(h, [p]) for h in homes):
                raise Forbidden(
                    f"path {raw!r} is, or contains, the server's store (RLMX_HOME), which sessions may "
                    "not read; upload the files instead (multipart)"
                )
        if not real.exists():
            raise BadRequest(f"path {raw!r} does not exist on the server")
        return real

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
            self.meta.enqueue_job(JobRecord(job_id=new_id("job"), kind="ingest", ref_id=rec.session_id))
            self.wake()
        return rec

    def create_session_from_paths(
        self,
        tenant: str,
        docs: list[dict[str, Any]],
        *,
        ttl_minutes: int | None = None,
        options: dict[str, Any] | None = None,
    ) -> SessionRecord:
        if not docs:
            raise BadRequest("give at least one document: docs: [{source_name, path}]")
        inputs = []
        for d in docs:
            real = self.check_path(str(d.get("path", "")))
            inputs.append({"source_name": d.get("source_name") or real.name, "path": str(real)})
        return self.create_session(tenant, inputs, ttl_minutes=ttl_minutes, options=options)

    def new_upload_dir(self) -> tuple[str, Path]:
        sid = new_id("ses")
        folder = self.store.home / "uploads" / sid
        folder.mkdir(parents=True, exist_ok=True)
        return sid, folder

    def ingest_session(self, session_id: str, *, meta: MetadataStore | None = None) -> None:
        """Ingest a session's inputs (a worker's job): READY with per-document status, or
        FAILED with the reason. Idempotent (documents are content-addressed). ``meta``: where
        the session's outcome is written (a worker's :meth:`job_store`)."""
        meta = meta or self.meta
        rec = self.meta.get_session(session_id)
        if rec.deleted_at is not None:
            return
        paths = [str(i["path"]) for i in rec.inputs]
        names = {str(i["path"]): str(i.get("source_name") or "") for i in rec.inputs}

        def source_name(path: str) -> str:
            for p, n in names.items():
                if path == p or path.startswith(p.rstrip("/") + "/"):
                    return n
            return ""

        try:
            corpus = ingest(paths, self.store)
        except IngestError as e:
            rec.status, rec.error = "FAILED", str(e)
            rec.documents = [{"source_name": names[p], "path": p, "status": "FAILED", "error": str(e)} for p in paths]
            meta.put_session(rec)
            return
        corpus = self._apply_source_names(corpus, names)
        docs: list[dict[str, Any]] = [
            {
                "source_name": source_name(d.source_path),
                "path": d.source_path,
                "status": "READY",
                "doc_id": d.doc_id,
                "name": d.name,
                "chars": d.length_chars,
                "media_type": d.media_type,
            }
            for d in corpus.documents
        ]
        docs += [
            {"source_name": source_name(f.source_path), "path": f.source_path, "status": "FAILED", "error": f.reason}
            for f in corpus.failures
        ]
        rec = self.meta.get_session(session_id)
        rec.status, rec.corpus_id, rec.documents, rec.error = "READY", corpus.corpus_id, docs, None
        meta.put_session(rec)

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

    def delete_session(self, tenant: str, session_id: str) -> None:
        self._delete(self.get_session(tenant, session_id))

    def list_sessions(self, tenant: str, limit: int = 100) -> list[SessionRecord]:
        now = utcnow()
        return [s for s in self.meta.list_sessions(tenant, limit=limit) if s.expires_at is None or s.expires_at > now]

    @staticmethod
    def session_view(rec: SessionRecord) -> dict[str, Any]:
        return {
            "session_id": rec.session_id,
            "status": rec.status,
            "error": rec.error,
            "corpus_id": rec.corpus_id,
            "documents": rec.documents,
            "n_documents": sum(1 for d in rec.documents if d.get("status") == "READY"),
            "n_failed": sum(1 for d in rec.documents if d.get("status") == "FAILED"),
            "options": rec.options,
            "created_at": rec.created_at.isoformat(),
            "expires_at": rec.expires_at.isoformat() if rec.expires_at else None,
        }

    def _ready_corpus(self, tenant: str, session_id: str) -> tuple[SessionRecord, CorpusRecord]:
        session = self.get_session(tenant, session_id)
        if session.status != "READY" or session.corpus_id is None:
            raise Conflict(f"session {session_id!r} is {session.status}; wait until it is READY")
        return session, self.meta.get_corpus(session.corpus_id)

    # -- answerer executions --------------------------------------------------------------------
    @staticmethod
    def _check_schema(schema: Any) -> None:
        if schema is not None:
            try:
                OutputSchema(schema)
            except ConfigError as e:
                raise BadRequest(str(e)) from None

    def create_execution(
        self, tenant: str, session_id: str, request: dict[str, Any], *, run_here: str | None = None
    ) -> dict[str, Any]:
        """Queue an answerer execution: ``{question, models?, budgets?, output_schema?}``.
        ``run_here``: a worker id that runs it right away (its job is created claimed)."""
        session, corpus = self._ready_corpus(tenant, session_id)
        question = str(request.get("question") or "").strip()
        if not question:
            raise BadRequest("the question is empty")
        self._check_schema(request.get("output_schema"))
        rlm = self.make_rlm(request.get("models"), request.get("budgets"))
        eid = new_id("exe")
        req = {**request, "question": question, "models": self.resolve_models(request.get("models"))}
        self.meta.put_execution(
            ExecutionRecord(
                execution_id=eid,
                corpus_id=corpus.corpus_id,
                question=question,
                mode="answerer",
                root_id=eid,
                root_model=rlm.root_spec,
                sub_model=rlm.sub_spec,
                budgets=rlm.budgets.model_dump(),
            )
        )
        self.meta.put_service_execution(
            ServiceExecutionRecord(
                execution_id=eid, tenant=tenant, session_id=session.session_id, mode="answerer", request=req
            )
        )
        job = JobRecord(job_id=eid, kind="answerer", ref_id=eid)
        if run_here is not None:
            job.state, job.lease_owner, job.attempts = "RUNNING", run_here, 1
            job.lease_expires_at = utcnow() + timedelta(seconds=self.settings.lease_seconds)
        self.meta.enqueue_job(job)
        if run_here is None:
            self.wake()
        return {"execution_id": eid, "status": Status.RUNNING.value}

    def event_sink(self, root_id: str, meta: MetadataStore | None = None) -> Callable[[str, dict[str, Any]], None]:
        into = meta or self.meta

        def sink(kind: str, data: dict[str, Any]) -> None:
            try:
                into.add_event(root_id, kind, _jsonable(data))
            except RlmxError:  # progress events are not worth failing an execution for
                log.warning("could not store a %s event of %s", kind, root_id)

        return sink

    def final_event(self, execution_id: str, meta: MetadataStore | None = None) -> None:
        rec = self.meta.get_execution(execution_id)
        (meta or self.meta).add_event(
            execution_id,
            "final",
            _jsonable(
                {
                    "execution_id": execution_id,
                    "status": rec.status,
                    "answer": rec.answer,
                    "citations": rec.citations,
                    "fields": rec.fields,
                    "usage": rec.usage,
                    "error": rec.error,
                }
            ),
        )

    def _fail(self, execution_id: str, status: Status, error: str, meta: MetadataStore | None = None) -> None:
        rec = self.meta.get_execution(execution_id)
        rec.status, rec.error, rec.finished_at = status.value, error, utcnow()
        (meta or self.meta).put_execution(rec)

    async def run_answerer(
        self,
        job: JobRecord,
        *,
        sub_lm: LMClient | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        """Run (or resume) the answerer execution of ``job`` to its end. ``sub_lm``: another
        sub-LM client (an MCP client's model); ``on_event`` also receives the events.
        Everything is written through :meth:`job_store`: once the job's lease is lost to
        another worker, nothing this run writes counts, ``on_lost()`` is called (the caller
        cancels the run) and the execution stops at its next turn boundary at the latest."""
        eid = job.ref_id
        sx = self.meta.get_service_execution(eid)
        if sx is None:
            raise NotFoundError(f"execution {eid!r} has no service record")
        req = sx.request
        store = self.job_store(job, on_lost)
        meta = store.meta

        def should_stop() -> bool:
            j = self.meta.get_job(eid)
            if j is None:
                return False
            taken = job.lease_owner is not None and (j.lease_owner, j.attempts) != (job.lease_owner, job.attempts)
            return j.cancel_requested or taken

        try:
            if should_stop():
                self._fail(eid, Status.CANCELLED, "cancelled before it started", meta)
            else:
                session = self.meta.get_session(sx.session_id)
                if session.corpus_id is None:
                    raise ConfigError(f"session {sx.session_id} has no corpus")
                corpus = self.meta.get_corpus(session.corpus_id)
                store_sink = self.event_sink(eid, meta)
                sink = store_sink
                if on_event is not None:
                    extra = on_event

                    def both(kind: str, data: dict[str, Any]) -> None:
                        store_sink(kind, data)
                        extra(kind, data)

                    sink = both
                rlm = self.make_rlm(req.get("models"), req.get("budgets"), on_event=sink, store=store)
                resume = job.attempts > 1 or bool(self.meta.get_turns(eid))
                await rlm.aask(
                    corpus,
                    str(req["question"]),
                    req.get("output_schema"),
                    execution_id=eid,
                    resume=resume,
                    should_stop=should_stop,
                    sub_lm=sub_lm,
                )
        except (RlmxError, ServiceError) as e:
            self._fail(eid, Status.FAILED, f"{type(e).__name__}: {e}", meta)
        self.final_event(eid, meta)

    def requeue(self, job: JobRecord, worker_id: str) -> None:
        """A worker shutting down gives its job back: the execution is RUNNING again (the
        engine recorded CANCELLED when its task was cancelled) and resumes elsewhere. The
        record is reset while the lease is still held, then the job is released."""
        if job.kind == "answerer":
            meta = self.job_store(job).meta
            rec = self.meta.get_execution(job.ref_id)
            rec.status, rec.error, rec.finished_at = Status.RUNNING.value, None, None
            meta.put_execution(rec)
        self.meta.release_job(job.job_id, worker_id, attempt=job.attempts)

    def abandon_job(self, job: JobRecord, reason: str) -> None:
        """The holder of ``job``'s lease stops running it for good (an MCP ``ask`` whose
        request was cancelled): cancellation is requested, the execution is recorded
        CANCELLED unless it ended, and the job is DONE — all only while the lease is held."""
        try:
            if job.lease_owner is not None and not self.meta.holds_lease(job.job_id, job.lease_owner, job.attempts):
                return  # another worker runs it now
            self.meta.request_cancel(job.job_id)
            if job.kind == "answerer":
                meta = self.job_store(job).meta
                if self.meta.get_execution(job.ref_id).status not in TERMINAL:
                    self._fail(job.ref_id, Status.CANCELLED, reason, meta)
                if meta.lease_lost:
                    return
                self.final_event(job.ref_id, meta)
            if job.lease_owner is not None:
                self.meta.finish_job(job.job_id, job.lease_owner, error=reason, attempt=job.attempts)
        except RlmxError:
            log.exception("could not record the end of job %s", job.job_id)

    def fail_job(self, job: JobRecord, error: str) -> None:
        """A job's handler crashed (a bug): the execution or session is marked FAILED
        (only while the job's lease is held)."""
        meta = self.job_store(job).meta
        try:
            if job.kind == "answerer":
                self._fail(job.ref_id, Status.FAILED, error, meta)
                if not meta.lease_lost:
                    self.final_event(job.ref_id, meta)
            elif job.kind == "ingest":
                rec = self.meta.get_session(job.ref_id)
                rec.status, rec.error = "FAILED", error
                meta.put_session(rec)
        except RlmxError:
            log.exception("could not record the failure of job %s", job.job_id)

    # -- executions: reading and cancelling -------------------------------------------------------
    def owned_execution(self, tenant: str, execution_id: str) -> tuple[ServiceExecutionRecord, ExecutionRecord]:
        missing = NotFound(f"execution {execution_id!r} not found")
        sx = self.meta.get_service_execution(execution_id)
        if sx is None or sx.tenant != tenant:
            raise missing
        try:
            return sx, self.meta.get_execution(execution_id)
        except NotFoundError:
            raise missing from None

    def execution_view(self, tenant: str, execution_id: str) -> dict[str, Any]:
        sx, rec = self.owned_execution(tenant, execution_id)
        turns = self.meta.get_turns(execution_id)
        usage = (
            rec.usage if rec.status in TERMINAL and rec.usage else stored_usage(self.meta, execution_id).model_dump()
        )
        last = turns[-1] if turns else None
        job = self.meta.get_job(execution_id)
        tokens = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
        return {
            "execution_id": rec.execution_id,
            "session_id": sx.session_id,
            "mode": sx.mode,
            "status": rec.status,
            "question": rec.question,
            "answer": rec.answer,
            "citations": rec.citations,
            "fields": rec.fields,
            "error": rec.error,
            "models": {"root": rec.root_model, "sub": rec.sub_model},
            "usage": usage,
            "cost_usd": usage.get("cost_usd"),
            "budgets": rec.budgets,
            "budgets_consumed": {
                "max_turns": usage.get("turns", 0),
                "max_sub_calls": usage.get("sub_calls", 0),
                "max_total_tokens": tokens,
                "max_cost_usd": usage.get("cost_usd"),
                "max_wall_seconds": usage.get("wall_seconds", 0.0),
                "max_depth": usage.get("max_depth_reached", 0),
            },
            "last_turn": None
            if last is None
            else {
                "turn": last.get("turn"),
                "code": last.get("code"),
                "stdout": (last.get("stdout") or "")[-4000:] or None,
                "error": last.get("error"),
                "final": last.get("final"),
            },
            "turns": len(turns),
            "cancel_requested": bool(job and job.cancel_requested),
            "created_at": rec.created_at.isoformat(),
            "finished_at": rec.finished_at.isoformat() if rec.finished_at else None,
        }

    async def cancel(self, tenant: str, execution_id: str) -> dict[str, Any]:
        """Ask the execution to stop: an answerer stops at its next turn boundary (at once
        when still queued); a runtime execution stops now."""
        sx, rec = self.owned_execution(tenant, execution_id)
        if rec.status in TERMINAL:
            return {"execution_id": execution_id, "status": rec.status, "cancel_requested": False}
        if sx.mode == "runtime":
            rt = self._forget_runtime(execution_id)
            if rt is not None:
                await rt.cancel("cancelled by the client")
                rt.engine.close()
            else:
                self._fail(execution_id, Status.CANCELLED, "cancelled by the client")
            self.final_event(execution_id)
        else:
            before = self.meta.request_cancel(execution_id)
            if before is not None and before.state == "QUEUED":
                self._fail(execution_id, Status.CANCELLED, "cancelled before it started")
                self.final_event(execution_id)
        status = self.meta.get_execution(execution_id).status
        return {"execution_id": execution_id, "status": status, "cancel_requested": True}

    def events(self, tenant: str, execution_id: str, after: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        self.owned_execution(tenant, execution_id)
        return self.meta.get_events(execution_id, after=after, limit=limit)

    def is_finished(self, execution_id: str) -> bool:
        return self.meta.get_execution(execution_id).status in TERMINAL

    def trace(self, tenant: str, execution_id: str) -> dict[str, Any]:
        self.owned_execution(tenant, execution_id)
        return load_trace(self.meta, execution_id)

    # -- runtime executions ---------------------------------------------------------------------
    def _runtime(self, execution_id: str, rlm: RLM, corpus: CorpusRecord, request: dict[str, Any]) -> RuntimeExecution:
        engine = Engine(self.store, rlm.options)
        tree = rlm.make_tree(engine)
        schema = OutputSchema(request["output_schema"]) if request.get("output_schema") is not None else None
        return RuntimeExecution(
            engine,
            tree,
            execution_id=execution_id,
            spec=context_spec(corpus, self.store),
            corpus_id=corpus.corpus_id,
            question=str(request.get("question") or "(runtime execution)"),
            schema=schema,
            client_tools=request.get("sub_calls") == "client",
        )

    async def create_runtime(self, tenant: str, session_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Start a runtime execution: ``{question?, models?, budgets?, output_schema?,
        sub_calls: "server"|"client"}``; its REPL starts now."""
        session, corpus = self._ready_corpus(tenant, session_id)
        self._check_schema(request.get("output_schema"))
        eid = new_id("exe")
        rlm = self.make_rlm(request.get("models"), request.get("budgets"), on_event=self.event_sink(eid))
        req = {**request, "models": self.resolve_models(request.get("models"))}
        await self._take_runtime_slot(tenant, eid)
        try:
            rt = self._runtime(eid, rlm, corpus, req)
            self.meta.put_service_execution(
                ServiceExecutionRecord(
                    execution_id=eid, tenant=tenant, session_id=session.session_id, mode="runtime", request=req
                )
            )
            try:
                await rt.open()
            except RlmxError as e:
                rt.engine.close()
                raise BadRequest(f"the REPL could not start: {e}") from None
        except BaseException:
            self._runtime_slots.pop(eid, None)
            raise
        self.runtimes[eid] = rt
        return {
            "execution_id": eid,
            "status": Status.RUNNING.value,
            "sub_calls": "client" if rt.client_tools else "server",
        }

    async def _live_runtime(self, tenant: str, execution_id: str) -> RuntimeExecution:
        sx, rec = self.owned_execution(tenant, execution_id)
        if sx.mode != "runtime":
            raise Conflict(f"execution {execution_id!r} is an answerer execution; steps are for runtime executions")
        if rec.status in TERMINAL:
            raise Conflict(f"execution {execution_id!r} is {rec.status}; start a new one")
        lock = self._runtime_locks.setdefault(execution_id, asyncio.Lock())
        async with lock:
            rt = self.runtimes.get(execution_id)
            if rt is not None and rt.loop is not asyncio.get_running_loop():  # its event loop is gone
                self._forget_runtime(execution_id)
                rt.abandon()
                rt = None
            if rt is None:  # this process restarted, or the REPL was idle: restore by replay
                await self._take_runtime_slot(tenant, execution_id)
                try:
                    corpus = self.meta.get_corpus(rec.corpus_id)
                    rlm = self.make_rlm(
                        sx.request.get("models"), sx.request.get("budgets"), on_event=self.event_sink(execution_id)
                    )
                    rt = self._runtime(execution_id, rlm, corpus, sx.request)
                    try:
                        await rt.open(restore=True)
                    except RlmxError as e:
                        rt.engine.close()
                        raise Conflict(f"the execution could not be restored: {e}") from None
                except BaseException:
                    self._runtime_slots.pop(execution_id, None)
                    raise
                self.runtimes[execution_id] = rt
            return rt

    async def _after_step(self, rt: RuntimeExecution, view: dict[str, Any]) -> dict[str, Any]:
        if rt.status is not Status.RUNNING:
            self._forget_runtime(rt.execution_id)
            self._runtime_locks.pop(rt.execution_id, None)
            await rt.close()
            rt.engine.close()
            self.final_event(rt.execution_id)
        return view

    async def step(self, tenant: str, execution_id: str, code: str) -> dict[str, Any]:
        rt = await self._live_runtime(tenant, execution_id)
        try:
            view = await rt.step(code)
        except RuntimeConflict as e:
            raise Conflict(str(e)) from None
        return await self._after_step(rt, view)

    async def resolve_tools(
        self, tenant: str, execution_id: str, results: dict[str, Any], server_ids: list[str]
    ) -> dict[str, Any]:
        rt = await self._live_runtime(tenant, execution_id)
        try:
            view = await rt.resolve(results, server_ids)
        except RuntimeConflict as e:
            raise Conflict(str(e)) from None
        except ToolResultError as e:
            raise BadRequest(str(e)) from None
        return await self._after_step(rt, view)

    def _forget_runtime(self, execution_id: str) -> RuntimeExecution | None:
        self._runtime_slots.pop(execution_id, None)
        return self.runtimes.pop(execution_id, None)

    async def _take_runtime_slot(self, tenant: str, execution_id: str) -> None:
        """Count a REPL about to start for ``tenant`` against ``RLMX_MAX_RUNTIMES`` (this
        process) and ``RLMX_MAX_RUNTIMES_PER_TENANT``, after stopping idle ones; TooMany
        (429) at a limit."""
        await self.reap_idle()
        st = self.settings
        mine = [e for e, t in self._runtime_slots.items() if t == tenant]
        if len(mine) >= st.max_runtimes_per_tenant:
            raise TooMany(
                f"this tenant already has {len(mine)} runtime executions with a live REPL on this server "
                f"(the limit is {st.max_runtimes_per_tenant}, RLMX_MAX_RUNTIMES_PER_TENANT): finish or cancel "
                "one (POST /v1/executions/{id}/cancel), or retry when an idle one has been stopped",
                headers={"Retry-After": str(self._retry_after(mine))},
            )
        if len(self._runtime_slots) >= st.max_runtimes:
            raise TooMany(
                f"this server runs its limit of {st.max_runtimes} runtime REPLs (RLMX_MAX_RUNTIMES); retry later",
                headers={"Retry-After": str(self._retry_after(list(self._runtime_slots)))},
            )
        self._runtime_slots[execution_id] = tenant

    def _retry_after(self, execution_ids: list[str]) -> int:
        """Seconds until the first of these REPLs is stopped as idle (at least 1)."""
        limit = self.settings.runtime_idle_seconds
        now = time.monotonic()
        waits = [
            limit - (now - rt.last_used)
            for e in execution_ids
            if (rt := self.runtimes.get(e)) is not None and not rt.busy
        ]
        return max(1, math.ceil(min(waits, default=min(limit, 60.0))))

    async def reap_idle(self) -> None:
        """Stop the REPLs of runtime executions idle for ``RLMX_RUNTIME_IDLE_SECONDS`` (not
        those waiting for tool results); they are restored on their next request. Run by the
        HTTP app (every quarter of that, at most every 30 s) and by workers."""
        limit = self.settings.runtime_idle_seconds
        for eid, rt in list(self.runtimes.items()):
            if not rt.busy and time.monotonic() - rt.last_used > limit and self.runtimes.get(eid) is rt:
                self._forget_runtime(eid)
                await self._dispose(rt)

    async def close_runtimes(self) -> None:
        """Stop every runtime execution's REPL (their records stay RUNNING: restored on use)."""
        for eid in list(self.runtimes):
            rt = self._forget_runtime(eid)
            if rt is not None:
                await self._dispose(rt)

    @staticmethod
    async def _dispose(rt: RuntimeExecution) -> None:
        if rt.loop is asyncio.get_running_loop():
            await rt.close()
        else:  # started in an event loop that is gone
            rt.abandon()
        rt.engine.close()

    # -- spans and citations --------------------------------------------------------------------
    def get_span(
        self,
        tenant: str,
        *,
        doc_id: str | None,
        session_id: str | None,
        doc_index: int | None,
        start: int,
        end: int,
    ) -> dict[str, Any]:
        if doc_id:
            if not self.meta.tenant_has_document(tenant, doc_id):
                raise NotFound(f"document {doc_id!r} not found")
            doc = self.meta.get_document(doc_id)
        elif session_id and doc_index is not None:
            _session, corpus = self._ready_corpus(tenant, session_id)
            if not 0 <= doc_index < len(corpus.documents):
                raise NotFound(
                    f"session {session_id!r} has no document at index {doc_index} ({len(corpus.documents)} documents)"
                )
            doc = corpus.documents[doc_index]
        else:
            raise BadRequest("give doc_id, or session_id and doc_index")
        if not 0 <= start <= end <= doc.length_chars:
            raise BadRequest(f"offsets must satisfy 0 <= start <= end <= {doc.length_chars} (the document's length)")
        if end - start > MAX_SPAN_CHARS:
            raise BadRequest(f"a span is at most {MAX_SPAN_CHARS:,} characters")
        idx = self.store.blobs.local_path(doc.index_key) if doc.index_key else None
        reader = TextReader(self.store.blobs.local_path(doc.text_key), doc.length_chars, idx)
        try:
            text = reader.read(start, end)
        finally:
            reader.close()
        ref = SpanRef(
            doc_id=doc.doc_id, doc_name=doc.name, start=start, end=end, checksum=span_checksum(text), text=text
        )
        return {"text": text, "span": ref.model_dump()}

    def verify(self, tenant: str, citations: list[dict[str, Any]]) -> list[CitationCheck]:
        """Recompute each citation's checksum; documents the tenant has no session with are
        ``unknown document``, like missing ones. At most ``MAX_VERIFY_CITATIONS`` citations
        and ``MAX_VERIFY_CHARS`` characters of in-range spans a call (else TooLarge, 413)."""
        if len(citations) > MAX_VERIFY_CITATIONS:
            raise TooLarge(f"at most {MAX_VERIFY_CITATIONS:,} citations a request; send them in parts")
        owned: dict[str, int | None] = {}  # doc id -> its length, None when not the tenant's
        total = 0
        for c in citations:
            doc_id = str(c.get("doc_id", ""))
            if doc_id not in owned:
                owned[doc_id] = None
                if self.meta.tenant_has_document(tenant, doc_id):
                    try:
                        owned[doc_id] = self.meta.get_document(doc_id).length_chars
                    except NotFoundError:
                        pass
            length, start, end = owned[doc_id], c.get("start"), c.get("end")
            if length is not None and isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= length:
                total += end - start
        if total > MAX_VERIFY_CHARS:
            raise TooLarge(
                f"these citations cover {total:,} characters; at most {MAX_VERIFY_CHARS:,} a request: "
                "send them in parts"
            )
        out = []
        for i, c in enumerate(citations, 1):
            doc_id = str(c.get("doc_id", ""))
            start, end = c.get("start"), c.get("end")
            if owned[doc_id] is None:
                s, e = (start, end) if isinstance(start, int) and isinstance(end, int) else (-1, -1)
                out.append(CitationCheck(i, doc_id, s, e, False, "unknown document"))
                continue
            (check,) = verify_citations([c], self.store)
            out.append(CitationCheck(i, check.doc_id, check.start, check.end, check.ok, check.reason))
        return out

    # -- health ---------------------------------------------------------------------------------
    def ready(self) -> bool:
        try:
            self.meta.get_job("__ready__")
        except RlmxError:
            return False
        return True
