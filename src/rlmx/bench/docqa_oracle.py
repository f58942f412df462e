"""``docqa``'s offline root: a scripted oracle policy, **not a model**. Its scores measure
the pipeline (ingestion, the REPL's reads, citations), never a language model.

:class:`DocQAOracleLM` (spec ``baseline:bench-docqa``) is told each task's evidence and
answer (:meth:`DocQAOracleLM.add`); for a question it knows, its one turn is REPL code
(``policies/docqa_oracle.py.txt``) that greps every evidence piece in its document, reads
it back and ends with ``FINAL(answer, citations=hits)`` — or with "Evidence not found in
..." when a piece is missing, which scores 0. Tasks of several folders may ask the same
question: each is a candidate, and the first whose evidence this context holds answers.
A question it does not know ends with a reply saying so.
Tokens are estimated at ≈ 4 characters a token; priced 0 USD.
"""

from __future__ import annotations

from typing import Any

from ..lm.base import Completion, LMClient, Message, estimate_tokens
from ..lm.baseline import policy_template, question_of
from .tasks import Task

__all__ = ["DocQAOracleLM"]

_GIVE_UP = 'FINAL("The docqa oracle has no evidence for this question.")\n'


class DocQAOracleLM(LMClient):
    """See the module doc. Never raises."""

    provider = "baseline"

    def __init__(self, model: str = "bench-docqa"):
        self.model = model
        self.known: dict[str, list[dict[str, Any]]] = {}

    def add(self, task: Task) -> None:
        """Remember ``task``'s evidence (``meta["evidence"]``) and answer, by question."""
        evidence = [{"doc": e["doc"], "text": e["text"]} for e in task.meta.get("evidence", [])]
        cands = self.known.setdefault(task.question.strip(), [])
        cand = {"evidence": evidence, "answer": str(task.answer)}
        if cand not in cands:
            cands.append(cand)

    def respond(self, messages: list[Message]) -> str:
        """The reply to the root prompt ``messages``: prose and one ```repl block."""
        turn = sum(1 for m in messages if m["role"] == "assistant")
        known = self.known.get(question_of(messages, default="").strip())
        if turn > 0 or known is None:
            return f"End.\n```repl\n{_GIVE_UP}```"
        code = policy_template(__package__ or "rlmx.bench", "docqa_oracle").substitute(candidates=repr(known))
        return f"Find and read each evidence piece, then answer citing it.\n```repl\n{code}```"

    async def complete(
        self, messages: list[Message], *, max_tokens: int | None = None, temperature: float | None = None
    ) -> Completion:
        text = self.respond(messages)
        prompt = "".join(m["content"] for m in messages)
        return Completion(text, estimate_tokens(prompt), estimate_tokens(text), self.provider, self.model)
