"""What the viewer reads from the store: the trace of an execution tree and, for each cited
span, a window of the stored canonical text around it with its verification (recomputed
by :func:`rlmx.engine.verify.verify_citations`, exactly as ``rlmx verify`` does). Only the
window is read (memory-mapped), never the whole document."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..corpus.canonical import TextReader
from ..engine.trace import load_trace
from ..engine.verify import verify_citations
from ..errors import NotFoundError
from ..store import Store
from .build import build_view
from .model import CitationWindow, PageView, citation_key

__all__ = ["MAX_CITATIONS", "WINDOW_CHARS", "citation_windows", "latest_execution", "load_page"]

WINDOW_CHARS = 600
"""Characters of context shown on each side of a cited span."""
MAX_CITATIONS = 500
"""Citations of one tree whose windows a page embeds (the rest show "not read")."""
_MAX_SPAN = 20_000
"""Characters of a cited span itself a window shows (a longer span is cut in the middle)."""


def latest_execution(store: Store) -> str:
    """The id of the newest root execution. Raises :class:`~rlmx.errors.NotFoundError`
    (with how to make one) when the store has none."""
    recs = store.meta.list_executions(limit=1)
    if not recs:
        raise NotFoundError(f"no executions in {store.home}: run `rlmx ask PATH QUESTION` first")
    return recs[0].execution_id


def _tree_citations(trace: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    for c in trace["execution"].get("citations") or []:
        if isinstance(c, dict):
            yield c
    for child in trace.get("children", []):
        yield from _tree_citations(child)


def citation_windows(
    store: Store,
    citations: Iterable[dict[str, Any]],
    *,
    allowed: Callable[[str], bool] | None = None,
    radius: int = WINDOW_CHARS,
    limit: int = MAX_CITATIONS,
) -> dict[tuple[str, int, int], CitationWindow | str]:
    """For each citation (``{doc_id, start, end, checksum[, text]}``), keyed by
    :func:`~.model.citation_key`: the text ``radius`` characters either side of the span and
    whether it verifies, or the reason it cannot be shown (a string). Documents for which
    ``allowed(doc_id)`` is False are "unknown document" (another tenant's, in the service).
    Never raises for a bad citation."""
    out: dict[tuple[str, int, int], CitationWindow | str] = {}
    for c in citations:
        key = citation_key(c)
        if key in out:
            continue
        if len(out) >= limit:
            break
        doc_id, start, end = key
        if allowed is not None and not allowed(doc_id):
            out[key] = "unknown document"
            continue
        (check,) = verify_citations([c], store)
        try:
            doc = store.meta.get_document(doc_id)
        except NotFoundError:
            out[key] = check.reason or "unknown document"
            continue
        if not 0 <= start <= end <= doc.length_chars:
            out[key] = check.reason or "offsets outside the document"
            continue
        lo, hi = max(0, start - radius), min(doc.length_chars, end + radius)
        idx = store.blobs.local_path(doc.index_key) if doc.index_key else None
        reader = TextReader(store.blobs.local_path(doc.text_key), doc.length_chars, idx)
        try:
            if end - start > _MAX_SPAN:
                half = _MAX_SPAN // 2
                span = reader.read(start, start + half) + " … " + reader.read(end - half, end)
            else:
                span = reader.read(start, end)
            before, after = reader.read(lo, start), reader.read(end, hi)
        finally:
            reader.close()
        out[key] = CitationWindow(before, span, after, lo, hi, doc.length_chars, check.ok, check.reason)
    return out


def load_page(
    store: Store,
    execution_id: str,
    *,
    allowed: Callable[[str], bool] | None = None,
    trace: Mapping[str, Any] | None = None,
) -> PageView:
    """The view of ``execution_id``'s tree (``trace`` when already loaded). ``allowed``:
    see :func:`citation_windows`. Raises :class:`~rlmx.errors.NotFoundError` for an unknown id."""
    tr = trace if trace is not None else load_trace(store.meta, execution_id)
    return build_view(tr, citation_windows(store, _tree_citations(tr), allowed=allowed))
