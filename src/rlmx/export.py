"""Fine-tuning export (issue 12 item 5): stored trajectories as training records.

``chat-jsonl`` (:func:`chat_record`): one record per root execution, the root LM's
conversation as OpenAI-style chat messages — ``system`` (the root system prompt), ``user``
(the question and context summary), then per turn ``assistant`` (the response, its
```` ```repl ```` code included) and ``user`` (the observation, exactly the text the root LM
got: output truncated head + tail, errors, turns left), and for an execution that ran out of
turns the closing request and the last answer. The text comes from the stored turns, so a
model trained on it sees what the root LM saw. :func:`subcall_records`: the sub-LM's
``(prompt, response)`` pairs of the same trees, for distilling the sub-LM.
``trajectory-json``: the whole trace of each execution (:func:`rlmx.engine.trace.load_trace`).

Selection (:func:`select_executions`) reads the store; everything else is pure (dicts in,
dicts out). See ``docs/observability.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .store.base import ExecutionRecord, MetadataStore

__all__ = [
    "TRAJECTORY_FORMAT",
    "NotExportable",
    "chat_messages",
    "chat_record",
    "load_scores",
    "select_executions",
    "subcall_records",
]

TRAJECTORY_FORMAT = "rlmx.trajectory/1"
"""The ``format`` of a ``trajectory-json`` file: ``{"format", "executions": [trace, ...]}``."""


class NotExportable(ConfigError):
    """An execution has no root-LM conversation to export (a runtime-mode execution, whose
    steps a client wrote, or one with no committed turn). Skip it or pick another id."""


def chat_messages(turns: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The root LM's conversation of one execution from its stored ``turns`` (in order):
    the first turn's prompt, then ``assistant`` response and ``user`` observation per turn,
    the closing request (unless the last observation already carried it) and the response
    to it. Raises :class:`NotExportable` when the turns hold no root conversation."""
    if not turns or not turns[0].get("prompt") or any(t.get("mode") == "runtime" for t in turns):
        raise NotExportable("no root-LM conversation is stored (runtime mode, or no committed turn)")
    messages: list[dict[str, str]] = [
        {"role": str(m["role"]), "content": str(m["content"])} for m in turns[0]["prompt"]
    ]
    for t in turns:
        ask = t.get("final_request")
        if ask is not None:
            last = messages[-1]
            if last["role"] != "user" or str(ask) not in last["content"]:
                messages.append({"role": "user", "content": str(ask)})
        if t.get("response") is None:
            raise NotExportable(f"turn {t.get('turn')} has no stored root-LM response")
        messages.append({"role": "assistant", "content": str(t["response"])})
        if t.get("observation") is not None:
            messages.append({"role": "user", "content": str(t["observation"])})
    if messages[-1]["role"] != "assistant":
        messages.pop()  # an execution stopped after a turn's observation: end on the model's turn
    return messages


def chat_record(
    execution: ExecutionRecord,
    turns: Sequence[Mapping[str, Any]],
    *,
    score: float | None = None,
    metadata: bool = False,
) -> dict[str, Any]:
    """One ``chat-jsonl`` record ``{"messages": [...]}`` of ``execution``; with ``metadata``
    also ``{"metadata": {execution_id, status, question, root_model, sub_model, turns,
    score}}`` (off by default: fine-tuning uploads accept ``messages`` only). Raises
    :class:`NotExportable`."""
    rec: dict[str, Any] = {"messages": chat_messages(turns)}
    if metadata:
        rec["metadata"] = {
            "execution_id": execution.execution_id,
            "status": execution.status,
            "question": execution.question,
            "root_model": execution.root_model,
            "sub_model": execution.sub_model,
            "turns": len(turns),
            "score": score,
        }
    return rec


def subcall_records(
    trace: Mapping[str, Any], *, metadata: bool = False, seen: set[tuple[str, str]] | None = None
) -> Iterator[dict[str, Any]]:
    """The sub-LM calls of a trace (:func:`~rlmx.engine.trace.load_trace`; its children's
    too) as ``{"messages": [user prompt, assistant response]}`` records (``metadata``: also
    ``{execution_id, subcall_id, model}``). Child executions (``rlm_query`` answered by an
    RLM) are not sub-LM calls and are skipped; a pair already in ``seen`` is skipped (cache
    hits repeat pairs)."""
    seen = set() if seen is None else seen
    eid = trace["execution"]["execution_id"]
    for s in trace.get("subcalls", []):
        if s.get("child_id") or s.get("abandoned") or s.get("response") is None:
            continue
        pair = (str(s.get("prompt") or ""), str(s["response"]))
        if pair in seen:
            continue
        seen.add(pair)
        rec: dict[str, Any] = {
            "messages": [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
        }
        if metadata:
            rec["metadata"] = {"execution_id": eid, "subcall_id": s.get("id"), "model": s.get("model")}
        yield rec
    for child in trace.get("children", []):
        yield from subcall_records(child, metadata=metadata, seen=seen)


def load_scores(paths: Iterable[str | Path]) -> dict[str, float]:
    """``execution_id -> score`` from ``rlmx bench run`` result files (JSON lines with
    ``execution_id`` and ``score``; the best score wins when an id repeats). Raises
    :class:`~rlmx.errors.ConfigError` for a file that is not such a file."""
    scores: dict[str, float] = {}
    for path in paths:
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                eid, score = row.get("execution_id"), row["score"]
            except (json.JSONDecodeError, KeyError, AttributeError):
                raise ConfigError(
                    f"{path}:{n} is not a result row of `rlmx bench run` (JSON with execution_id and score)"
                ) from None
            if eid:
                scores[str(eid)] = max(float(score), scores.get(str(eid), float("-inf")))
    return scores


def select_executions(
    meta: MetadataStore,
    ids: Sequence[str] = (),
    *,
    since: datetime | None = None,
    statuses: Sequence[str] = (),
    scores: Mapping[str, float] | None = None,
    min_score: float | None = None,
) -> list[ExecutionRecord]:
    """The executions to export, oldest first: ``ids`` (any depth; raises
    :class:`~rlmx.errors.NotFoundError` for an unknown one), else every root execution
    (created at or after ``since`` when given); then only those with a status in
    ``statuses`` (when given) and, with ``min_score``, those whose score in ``scores`` is at
    least ``min_score`` (an execution without a score is dropped)."""
    if ids:
        recs = [meta.get_execution(i) for i in dict.fromkeys(ids)]
    else:
        recs = meta.list_executions(limit=10_000_000)
        if since is not None:
            recs = [r for r in recs if r.created_at >= since]
        recs.reverse()
    if statuses:
        wanted = {s.upper() for s in statuses}
        recs = [r for r in recs if r.status in wanted]
    if min_score is not None:
        got = scores or {}
        recs = [r for r in recs if r.execution_id in got and got[r.execution_id] >= min_score]
    return recs
