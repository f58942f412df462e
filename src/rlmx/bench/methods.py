"""The methods compared (RLM paper, arXiv 2512.24601 §3–4) and the two that are not RLMs.

* ``base`` — the whole context in one prompt to the root model, truncated to the model's
  window (:func:`window_tokens`; ≈ 4 characters a token, keeping the beginning and
  marking the cut in the prompt and in the result's ``truncated`` flag).
* ``retrieval`` — the ``top_k`` BM25 passages of the context (the corpus's SQLite FTS5
  index, ≈ 1,000-character chunks) and one call to the root model.
* ``rlm-d0`` — an RLM whose REPL has no sub-calls: budgets ``max_sub_calls=0`` and
  ``max_depth=0`` (a sub-call attempt ends the run with ``BUDGET_EXCEEDED``).
* ``rlm-d1`` / ``rlm-d2`` — an RLM with ``max_depth`` 1 / 2 (paper §2).

``base`` and ``retrieval`` go through the same LM stack as an RLM (``RLM.make_tree``: budget
tracker, LLM cache, retries, concurrency limit) and are stored as executions with mode
``"base"`` / ``"retrieval"`` and one turn (the prompt's context elided), so their usage and
cost are computed exactly as an RLM's and ``rlmx executions show`` lists them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import BudgetExceededError, RlmxError
from ..ids import new_id
from ..lm.base import LMClient
from ..lm.windows import DEFAULT_WINDOW_TOKENS, window_tokens
from ..store.base import CorpusRecord, ExecutionRecord, utcnow
from ..types import Budgets, Status, Usage
from .tasks import CHARS_PER_TOKEN, Task

if TYPE_CHECKING:
    from ..api import RLM

__all__ = [
    "DEFAULT_WINDOW_TOKENS",
    "METHODS",
    "DirectOutcome",
    "base_prompt",
    "method_budgets",
    "retrieval_prompt",
    "run_direct",
    "window_tokens",
]

METHODS = ("base", "retrieval", "rlm-d0", "rlm-d1", "rlm-d2")

_OUTPUT_RESERVE = 4_096
_MARK = "\n[... {cut:,} of {total:,} characters of the context were cut here to fit the model's window ...]\n"


def method_budgets(method: str, budgets: Budgets) -> Budgets:
    """The budgets of ``method`` from the run's: ``rlm-dN`` sets ``max_depth=N``;
    ``rlm-d0`` also ``max_sub_calls=0``. Raises ValueError for an unknown method."""
    if method in ("base", "retrieval"):
        return budgets
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    depth = int(method.removeprefix("rlm-d"))
    update: dict[str, Any] = {"max_depth": depth}
    if depth == 0:
        update["max_sub_calls"] = 0
    return budgets.model_copy(update=update)


def _tail(question: str, what: str) -> str:
    return f"\n\nQuestion: {question}\nAnswer the question from the {what} above."


def base_prompt(task: Task, window: int) -> tuple[str, bool, int]:
    """``(prompt, truncated, context characters sent)`` for ``base``: the context, cut to
    ``window`` tokens less 4,096 for the answer and the question's share."""
    tail = _tail(task.question, "text")
    room = (window - _OUTPUT_RESERVE) * CHARS_PER_TOKEN - len(tail)
    context = task.context
    if len(context) <= room:
        return context + tail, False, len(context)
    mark = _MARK.format(cut=len(context) - room, total=len(context))
    keep = max(0, room - len(mark))
    return context[:keep] + mark + tail, True, keep


def retrieval_prompt(task: Task, passages: list[tuple[int, int, str]]) -> str:
    """The ``retrieval`` prompt: numbered passages ``(start, end, text)`` in rank order."""
    parts = ["Passages of the context, most relevant first (BM25):"]
    for i, (s, e, text) in enumerate(passages, 1):
        parts.append(f"\n[{i}] characters {s:,}-{e:,}\n{text.strip()}")
    return "\n".join(parts) + _tail(task.question, "passages")


def _passages(rlm: RLM, corpus: CorpusRecord, query: str, k: int) -> list[tuple[int, int, str]]:
    from ..corpus.canonical import TextReader
    from ..corpus.corpus_index import ensure_index
    from ..corpus.index import SearchIndex

    store = rlm.store
    docs = {d.doc_id: d for d in corpus.documents}
    index = SearchIndex(ensure_index(corpus, store), readonly=True, immutable=True)
    readers: dict[str, TextReader] = {}
    try:
        rows = index.search(query, k, doc_ids=list(docs))
        out = []
        for r in rows:
            doc = docs.get(r.doc_id)
            if doc is None:
                continue
            if doc.doc_id not in readers:
                idx = store.blobs.local_path(doc.index_key) if doc.index_key else None
                readers[doc.doc_id] = TextReader(store.blobs.local_path(doc.text_key), doc.length_chars, idx)
            text = readers[doc.doc_id].read(r.start, r.end)
            # a corpus of several documents (a folder): say which one each passage is from
            out.append((r.start, r.end, f"### File: {doc.name}\n{text}" if len(docs) > 1 else text))
        return out
    finally:
        for reader in readers.values():
            reader.close()
        index.close()


@dataclass
class DirectOutcome:
    """What ``base`` / ``retrieval`` produced: as an RLM :class:`~rlmx.types.Answer`, plus
    ``truncated`` and ``context_chars_sent``."""

    execution_id: str
    status: Status
    text: str
    usage: Usage
    error: str | None = None
    truncated: bool = False
    context_chars_sent: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


async def run_direct(
    rlm: RLM,
    reader: LMClient,
    method: str,
    task: Task,
    corpus: CorpusRecord,
    *,
    window: int,
    top_k: int = 10,
    max_output_tokens: int | None = None,
) -> DirectOutcome:
    """Run ``base`` or ``retrieval`` for ``task`` with ``rlm``'s root model (``reader``,
    the client ``rlm`` was made with) through its LM stack and store; never raises for
    model errors (status FAILED / BUDGET_EXCEEDED)."""
    from ..engine.orchestrator import Engine

    tree = rlm.make_tree(Engine(rlm.store, rlm.options))  # the stack an RLM execution gets
    tracker, lm = tree.tracker, tree.root_lm
    truncated, sent, extra = False, task.context_chars, {}
    if method == "base":
        prompt, truncated, sent = base_prompt(task, window)
    else:
        found = _passages(rlm, corpus, task.question, top_k)
        prompt = retrieval_prompt(task, found)
        sent = sum(e - s for s, e, _ in found)
        extra["passages"] = [[s, e] for s, e, _ in found]
    eid = new_id("exe")
    rec = ExecutionRecord(
        execution_id=eid,
        corpus_id=corpus.corpus_id,
        question=task.question,
        mode=method,
        root_id=eid,
        root_model=reader.spec,
        budgets=rlm.budgets.model_dump(),
    )
    meta = rlm.store.meta
    meta.put_execution(rec)
    status, text, error, completion = Status.COMPLETED, "", None, None
    tracker.turns = 1
    t0 = time.monotonic()
    try:
        completion = await lm.complete([{"role": "user", "content": prompt}], max_tokens=max_output_tokens)
        text = completion.text
    except BudgetExceededError as e:
        status, error = Status.BUDGET_EXCEEDED, str(e)
    except RlmxError as e:
        status, error = Status.FAILED, f"{type(e).__name__}: {e}"
    shown = prompt  # the retrieval prompt is small; the base prompt's context is elided
    if method == "base":
        shown = f"[context: {sent:,} characters, {task.context_sha256}]" + prompt[sent:]
    meta.add_turn(
        eid,
        1,
        {
            "turn": 1,
            "depth": 0,
            "method": method,
            "prompt": [{"role": "user", "content": shown}],
            "response": text,
            "root_model": reader.spec,
            "cached": bool(completion and completion.cached),
            "input_tokens": completion.input_tokens if completion else 0,
            "output_tokens": completion.output_tokens if completion else 0,
            "cost_usd": completion.raw.get("cost_usd") if completion else None,
            "error": error,
            "truncated": truncated,
            "timings": {"root_s": round(time.monotonic() - t0, 4)},
            **extra,
        },
    )
    usage = tracker.usage()
    rec.status, rec.answer, rec.error = status.value, text, error
    rec.usage, rec.finished_at = usage.model_dump(), utcnow()
    meta.put_execution(rec)
    return DirectOutcome(eid, status, text, usage, error, truncated, sent, extra)
