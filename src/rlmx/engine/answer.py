"""The outcome of an execution that ended with ``FINAL``/``SUBMIT``: the answer and its
citations, derived from the execution's span log (DESIGN.md invariant 2; rules in
``docs/citations.md``): explicit citations are kept only where the execution read or got
them as hits (the others are refused, and the outcome's ``error`` says so), else spans are
derived from what the answer quotes, from the reads that fed the sub-calls it uses, and from
its children's citations; each becomes a checksummed SpanRef."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import RlmxError
from ..sandbox.base import FinalSignal
from ..types import Status
from .citations import Span, answer_uses, build_spanrefs, check_explicit, derive_spans, merge_spans, refused_message
from .resolver import ToolResolverImpl
from .state import ExecutionOutcome, ExecutionState

__all__ = ["outcome"]


def outcome(
    st: ExecutionState,
    resolver: ToolResolverImpl,
    final: FinalSignal,
    status: Status,
    fields: dict[str, Any] | None,
    text_of: Callable[[str, int, int], str],
    name_of: Callable[[str], str],
) -> ExecutionOutcome:
    """``final``'s answer with its citations as an :class:`ExecutionOutcome` of ``status``
    (``fields``: the validated ``SUBMIT`` fields). ``text_of(doc_id, start, end)`` reads
    canonical text (offsets in characters), ``name_of(doc_id)`` a document's name."""
    answer = final.answer
    explicit: list[dict[str, int | str]] | None = None
    refused: list[Span] = []
    if final.citations:
        clipped = (st.clip(str(c.get("doc_id")), _int(c.get("start")), _int(c.get("end"))) for c in final.citations)
        accepted, refused = check_explicit([c for c in clipped if c is not None], st.events.values())
        explicit = [{"doc_id": c.doc_id, "start": c.start, "end": c.end} for c in accepted]
    spans = derive_spans(answer, explicit, st.events.values(), resolver.responses, text_of, st.clip)
    if not final.citations:
        for sid, refs in resolver.child_citations.items():  # made by the engine for the child
            if answer_uses(answer, resolver.responses.get(sid, "")):
                spans.extend(Span(r.doc_id, r.start, r.end) for r in refs)
        spans = merge_spans(spans)
    refs = []
    for span in spans:
        try:
            refs += build_spanrefs([span], text_of, lambda d: st.names.get(d) or name_of(d))
        except (RlmxError, ValueError, OSError):
            continue  # a document that vanished from the store cannot be cited
    error = refused_message(refused) if refused else None
    return ExecutionOutcome(st.execution_id, status, answer, refs, fields=fields, error=error)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
