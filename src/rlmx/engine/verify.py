"""``verify``: recompute citation checksums against the stored canonical text (DESIGN.md
invariant 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..corpus.canonical import TextReader
from ..errors import NotFoundError
from ..store import Store
from ..types import span_checksum

__all__ = ["CitationCheck", "verify_citations"]


@dataclass(frozen=True)
class CitationCheck:
    """Outcome for one citation: ``ok`` and, when not, ``reason`` (what differs)."""

    index: int
    doc_id: str
    start: int
    end: int
    ok: bool
    reason: str = ""


def verify_citations(citations: list[dict[str, Any]], store: Store) -> list[CitationCheck]:
    """Check each ``{doc_id, start, end, checksum[, text]}`` against the store. Offsets are
    code points; the checksum is ``sha256:`` over UTF-8. Never raises for a bad citation
    (one that is not even an object included): it is reported with its reason."""
    out: list[CitationCheck] = []
    for i, c in enumerate(citations, 1):
        if not isinstance(c, dict):
            out.append(CitationCheck(i, "", -1, -1, False, "a citation is an object {doc_id, start, end, checksum}"))
            continue
        doc_id, start, end = str(c.get("doc_id", "")), c.get("start"), c.get("end")
        checksum = c.get("checksum")
        if not isinstance(start, int) or not isinstance(end, int) or not checksum:
            out.append(CitationCheck(i, doc_id, -1, -1, False, "needs doc_id, start, end and checksum"))
            continue
        try:
            doc = store.meta.get_document(doc_id)
        except NotFoundError:
            out.append(CitationCheck(i, doc_id, start, end, False, "unknown document (not in this RLMX_HOME)"))
            continue
        if not 0 <= start <= end <= doc.length_chars:
            out.append(
                CitationCheck(
                    i,
                    doc_id,
                    start,
                    end,
                    False,
                    f"offsets outside the document (0..{doc.length_chars})",
                )
            )
            continue
        idx = store.blobs.local_path(doc.index_key) if doc.index_key else None
        reader = TextReader(store.blobs.local_path(doc.text_key), doc.length_chars, idx)
        try:
            text = reader.read(start, end)
        finally:
            reader.close()
        if span_checksum(text) != checksum:
            out.append(CitationCheck(i, doc_id, start, end, False, "checksum does not match the stored text"))
        elif "text" in c and c["text"] not in (None, text):
            out.append(CitationCheck(i, doc_id, start, end, False, "text does not match the stored text"))
        else:
            out.append(CitationCheck(i, doc_id, start, end, True))
    return out
