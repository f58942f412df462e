"""Routes of sessions: create (JSON paths or a multipart upload), list, read, delete."""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from ..auth import Principal
from ..core import Service
from ..deps import ERRORS, auth, error_response, service
from ..errors import BadRequest
from ..paths import safe_filename
from ..schemas import Accepted, SessionCreate, SessionList, SessionOut, load_json, plain_json
from ..sessions import DOCUMENTS_PAGE, MAX_DOCUMENTS_PAGE

__all__ = ["router"]

router = APIRouter()


session_body = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/SessionCreate"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1},
                        "ttl_minutes": {"type": "integer", "minimum": 1, "maximum": 525600},
                        "options": {"type": "object", "description": "A JSON object (an application/json part)."},
                    },
                    "required": ["files"],
                }
            },
        },
    }
}


@router.post(
    "/v1/sessions",
    status_code=202,
    response_model=Accepted,
    tags=["sessions"],
    openapi_extra=session_body,
    responses={
        **ERRORS,
        400: {"description": "Bad input"},
        403: {"description": "Path outside RLMX_ALLOWED_PATHS"},
        413: {"description": "Too large"},
        415: {"description": "Not JSON or multipart"},
        422: {"description": "Invalid body"},
    },
)
async def create_session(request: Request, p: Principal = auth, svc: Service = service) -> Any:
    """Create a session from documents: a multipart upload (one or more ``files``
    fields, optional ``ttl_minutes`` and ``options``), or JSON ``{"docs": [{"source_name",
    "path"}], "ttl_minutes"?, "options"?, "include"?, "exclude"?}`` with paths under ``RLMX_ALLOWED_PATHS``.
    Ingestion runs in the background: poll ``GET /v1/sessions/{id}``."""
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith("multipart/form-data"):
        rec = await _from_upload(request, p, svc)
    elif ctype.startswith("application/json") or not ctype:
        data = load_json(await request.body())
        try:
            body = SessionCreate.model_validate(data)
        except ValidationError as e:
            return JSONResponse(
                {"detail": e.errors(include_url=False, include_context=False, include_input=False)},
                status_code=422,
            )
        rec = await asyncio.to_thread(
            svc.create_session_from_paths,
            p.tenant,
            [d.model_dump() for d in body.docs],
            ttl_minutes=body.ttl_minutes,
            options=body.options,
            include=body.include,
            exclude=body.exclude,
        )
    else:
        return error_response(415, "send application/json or multipart/form-data")
    return {"session_id": rec.session_id, "status": rec.status}


async def _from_upload(request: Request, p: Principal, svc: Service) -> Any:
    sid, folder = await asyncio.to_thread(svc.new_upload_dir)
    try:
        try:
            form = await request.form(max_files=1000, max_fields=100)
        except Exception as e:  # malformed multipart
            raise BadRequest(f"malformed multipart body: {e}") from None
        files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        if not files:
            raise BadRequest("multipart: send one or more `files` fields with file content")
        ttl: int | None = None
        raw_ttl = form.get("ttl_minutes")
        if isinstance(raw_ttl, str) and raw_ttl.strip():
            try:
                ttl = int(raw_ttl)
            except ValueError:
                raise BadRequest("ttl_minutes must be an integer") from None
            if not 1 <= ttl <= 525_600:
                raise BadRequest("ttl_minutes must be between 1 and 525600")
        options: dict[str, Any] | None = None
        raw_opt = form.get("options")
        if isinstance(raw_opt, str) and raw_opt.strip():
            options = load_json(raw_opt.encode("utf-8", "surrogatepass"), "options")
            if not isinstance(options, dict):
                raise BadRequest("options must be a JSON object")
            try:
                plain_json(options)
            except ValueError as e:
                raise BadRequest(f"options: {e}") from None
        taken: set[str] = set()
        inputs: list[dict[str, str]] = []
        for f in files:
            name = safe_filename(f.filename or "upload", taken)
            dest = folder / name
            with dest.open("wb") as out:
                await asyncio.to_thread(shutil.copyfileobj, f.file, out)
            await f.close()
            key = f"uploads/{sid}/{len(inputs)}"  # the blob store: a worker on another host reads it there
            await asyncio.to_thread(svc.store.blobs.put, key, await asyncio.to_thread(dest.read_bytes))
            inputs.append({"source_name": name, "path": str(dest), "blob": key})
        return await asyncio.to_thread(
            svc.create_session,
            p.tenant,
            inputs,
            ttl_minutes=ttl,
            options=options,
            session_id=sid,
            upload_dir=str(folder),
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


@router.get("/v1/sessions", response_model=SessionList, tags=["sessions"], responses=ERRORS)
async def list_sessions(limit: int = Query(100, ge=1, le=1000), p: Principal = auth, svc: Service = service) -> Any:
    """The caller's sessions, newest first."""
    recs = await asyncio.to_thread(svc.list_sessions, p.tenant, limit)
    return {"sessions": await asyncio.to_thread(svc.session_views, recs)}


def _page(documents: str | None) -> tuple[int, int] | None:
    """``"offset,limit"`` → ``(offset, limit)``; BadRequest when out of range."""
    if documents is None:
        return None
    offset, limit = (int(x) for x in documents.split(","))
    if not 1 <= limit <= MAX_DOCUMENTS_PAGE:
        raise BadRequest(f"documents: limit must be between 1 and {MAX_DOCUMENTS_PAGE}, e.g. ?documents=0,50")
    return offset, limit


@router.get(
    "/v1/sessions/{session_id}",
    response_model=SessionOut,
    tags=["sessions"],
    responses={**ERRORS, 400: {"description": "Bad documents page"}, 422: {"description": "Bad query"}},
)
async def get_session(
    session_id: str,
    documents: str | None = Query(
        None,
        pattern=r"^[0-9]{1,9},([1-9][0-9]{0,2}|1000)$",
        description=f"A page of the per-document entries, `offset,limit` (default `0,{DOCUMENTS_PAGE}`; "
        f"limit at most {MAX_DOCUMENTS_PAGE}).",
    ),
    p: Principal = auth,
    svc: Service = service,
) -> Any:
    """Status (``CREATING``, ``READY``, ``FAILED``), ingestion progress (``documents_parsed``
    of ``documents_total`` files), the ingestion ``summary``, and one page of the
    per-document entries (status, errors; ``documents_page`` has the totals)."""
    page = _page(documents)
    rec = await asyncio.to_thread(svc.get_session, p.tenant, session_id)
    return await asyncio.to_thread(svc.session_view, rec, page)


@router.delete("/v1/sessions/{session_id}", status_code=204, tags=["sessions"], responses=ERRORS)
async def delete_session(session_id: str, p: Principal = auth, svc: Service = service) -> None:
    """Delete the session (its uploaded files too)."""
    await asyncio.to_thread(svc.delete_session, p.tenant, session_id)
