"""Spans and citations: the canonical text of a span of a tenant's document, and checking
citations against the stored text (bounded per request)."""

from __future__ import annotations

from typing import Any

from ..corpus.canonical import TextReader
from ..engine.verify import CitationCheck, verify_citations
from ..errors import NotFoundError
from ..types import SpanRef, span_checksum
from .errors import BadRequest, NotFound, TooLarge
from .sessions import SessionsMixin

__all__ = ["MAX_SPAN_CHARS", "MAX_VERIFY_CHARS", "MAX_VERIFY_CITATIONS", "SpansMixin"]

MAX_SPAN_CHARS = 1_000_000
MAX_VERIFY_CITATIONS = 1000
"""Citations one verify request may check."""
MAX_VERIFY_CHARS = 10 * MAX_SPAN_CHARS
"""Characters one verify request may read (the sum of its citations' in-range spans)."""


class SpansMixin(SessionsMixin):
    """Spans of tenants' documents, and verifying citations."""

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
