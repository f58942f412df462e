"""Conversations: a follow-up question on the same corpus is its own execution (own budget,
trace and id, linked by ``previous_id``) that keeps the REPL's variables and a compacted
history (issue 11, item 4).

The REPL of a follow-up starts from the previous execution's last committed snapshot (the
same sealed snapshot a resumed execution restores, so it works across processes and
servers); the root LM's first message is prefixed with the earlier questions and answers
(at most :data:`MAX_EXCHANGES`, each answer cut to :data:`MAX_ANSWER_CHARS` characters) and
the names of the variables it still has (``prompts/followup.md``). A previous execution
whose snapshot is missing (too large to store, or a REPL without snapshots) gives a
follow-up that starts afresh, and the prompt says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..store.base import MetadataStore
from ..types import Status
from .prompts import load_prompt

__all__ = ["MAX_ANSWER_CHARS", "MAX_EXCHANGES", "FollowUp", "load_followup"]

MAX_EXCHANGES = 8
"""Earlier exchanges shown to the root LM of a follow-up (the most recent ones)."""

MAX_ANSWER_CHARS = 1_500
"""Characters of each earlier answer shown (head, with a marker when cut)."""


@dataclass
class FollowUp:
    """What a follow-up starts from: ``previous_id``, its corpus, the earlier exchanges
    ``(question, status, answer)`` oldest first, and the previous REPL snapshot (None:
    the REPL starts afresh)."""

    previous_id: str
    corpus_id: str
    exchanges: list[tuple[str, str, str]] = field(default_factory=list)
    snapshot: Any = None

    @property
    def variables(self) -> list[str]:
        """Names of the variables the snapshot holds."""
        return sorted(getattr(self.snapshot, "vars", {}) or {})

    def preface(self) -> str:
        """The text put before the follow-up's first user message."""
        lines = []
        for i, (q, status, a) in enumerate(self.exchanges, 1):
            cut = len(a) - MAX_ANSWER_CHARS
            shown = a if cut <= 0 else a[:MAX_ANSWER_CHARS] + f" […{cut:,} more characters]"
            ended = "" if status == Status.COMPLETED.value else f" (it ended {status})"
            lines.append(f"{i}. Question: {q}\n   Answer{ended}: {shown or '(none)'}")
        if self.snapshot is None:
            held = "The REPL starts afresh: the earlier variables could not be restored."
        elif self.variables:
            held = "The REPL still holds the variables from before: " + ", ".join(self.variables[:60]) + "."
        else:
            held = "The REPL holds no variables from before."
        return load_prompt("followup").format(exchanges="\n".join(lines), variables=held)


def load_followup(
    meta: MetadataStore, previous_id: str, corpus_id: str, load_snapshot: Callable[[str, int], Any]
) -> FollowUp:
    """The follow-up of the finished root execution ``previous_id`` over ``corpus_id``:
    its conversation (walking ``previous_id`` links back, most recent :data:`MAX_EXCHANGES`)
    and its last snapshot (``load_snapshot(execution_id, turn) -> Snapshot | None``).
    Blocking I/O. Raises ``NotFoundError`` for an unknown id and ``ConfigError`` for an
    execution that is still running, is a child, or is over another corpus."""
    prev = meta.get_execution(previous_id)
    if prev.status == Status.RUNNING.value:
        raise ConfigError(f"execution {previous_id!r} is still running: wait for its end, then follow it up")
    if prev.parent_id is not None:
        raise ConfigError(f"execution {previous_id!r} is a child execution: follow up its root, {prev.root_id!r}")
    if prev.corpus_id != corpus_id:
        raise ConfigError(
            f"execution {previous_id!r} was over another corpus ({prev.corpus_id}): a follow-up keeps the REPL's "
            "variables, so it must ask about the same corpus"
        )
    exchanges: list[tuple[str, str, str]] = []
    rec: Any = prev
    while rec is not None and len(exchanges) < MAX_EXCHANGES:
        exchanges.append((rec.question, rec.status, rec.answer or ""))
        rec = meta.get_execution(rec.previous_id) if rec.previous_id else None
    last = meta.count_turns(previous_id)
    snapshot = None
    for turn in (last, last - 1):  # the last turn may be the closing request, which runs no step
        if turn > 0 and (snapshot := load_snapshot(previous_id, turn)) is not None:
            break
    return FollowUp(previous_id, corpus_id, exchanges[::-1], snapshot)
