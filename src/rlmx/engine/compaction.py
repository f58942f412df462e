"""History compaction (issue 11, item 5): when the root LM's conversation nears its context
window, the older turns are replaced by a summary while the REPL's state persists.

Trigger: the conversation's estimated size (≈ 4 characters a token,
:func:`rlmx.lm.base.estimate_tokens`) passes ``threshold`` × the root model's input window
(:func:`rlmx.lm.windows.known_window`, or ``EngineOptions.root_window_tokens``). Without a
known window compaction is off: guessing one would cut a conversation the model could
still read. What happens: the system prompt and the first user message stay; the last
:data:`KEEP_EXCHANGES` exchanges (root response + observation) stay verbatim; everything in
between goes to one LM call (the sub-LM when sub-calls are allowed, else the root LM) with
``prompts/compaction.md``, and its summary is appended to the first user message, so the
roles still alternate. The call is charged to the tree's token and USD budgets (not to
``max_sub_calls``: the model's code did not ask for it) and recorded in the turn it
preceded (``"compaction"``: turns summarised, tokens before and after, the summary, the
call's usage). A resumed execution rebuilds the whole history and compacts again (the
LLM cache answers the same request for free).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..lm.base import LMClient, Message, estimate_tokens
from ..lm.windows import known_window
from .prompts import load_prompt

__all__ = ["DEFAULT_THRESHOLD", "KEEP_EXCHANGES", "Compactor", "conversation_tokens", "make_compactor"]

DEFAULT_THRESHOLD = 0.8
"""Fraction of the root model's window at which the history is compacted."""

KEEP_EXCHANGES = 2
"""Most recent (response, observation) pairs kept verbatim."""

TRANSCRIPT_CHARS = 200_000
"""At most this many characters of the older turns go to the summariser (their tail)."""


def conversation_tokens(messages: list[Message]) -> int:
    """Estimated tokens of ``messages`` (≈ 4 characters a token)."""
    return estimate_tokens("".join(str(m.get("content") or "") for m in messages))


@dataclass
class Compactor:
    """Compacts a root conversation past ``threshold`` × ``window_tokens`` (tokens)."""

    window_tokens: int
    threshold: float = DEFAULT_THRESHOLD

    def needed(self, messages: list[Message]) -> bool:
        """True when ``messages`` is past the threshold and has older turns to summarise."""
        older = len(messages) - 2 - 2 * KEEP_EXCHANGES
        return older >= 2 and conversation_tokens(messages) > self.threshold * self.window_tokens

    async def compact(
        self, messages: list[Message], lm: LMClient, question: str, turn: int
    ) -> tuple[list[Message], dict[str, Any]]:
        """``messages`` (the input of root turn ``turn``: its last message is turn ``turn - 1``'s
        observation) with the turns between the first message and the last
        :data:`KEEP_EXCHANGES` exchanges replaced by ``lm``'s summary, and the record of it.
        Raises what ``lm.complete`` raises (a spent budget included)."""
        head, older, kept = (
            messages[:2],
            messages[2 : len(messages) - 2 * KEEP_EXCHANGES],
            messages[-2 * KEEP_EXCHANGES :],
        )
        transcript = "\n\n".join(f"[{m['role']}]\n{m.get('content') or ''}" for m in older)[-TRANSCRIPT_CHARS:]
        prompt = load_prompt("compaction").format(question=question, transcript=transcript)
        completion = await lm.complete([{"role": "user", "content": prompt}])
        first = turn - (len(messages) - 2) // 2  # the turn of messages[2]
        summarised = [first, first + len(older) // 2 - 1]
        note = (
            f"\n\n[Turns {summarised[0]}–{summarised[1]} were replaced by this summary to fit the context window; "
            f"the REPL's variables are unchanged.]\n{completion.text.strip()}"
        )
        new = [head[0], {"role": "user", "content": str(head[1]["content"]) + note}, *kept]
        record = {
            "turns": summarised,
            "tokens_before": conversation_tokens(messages),
            "tokens_after": conversation_tokens(new),
            "summary": completion.text,
            "model": completion.spec,
            "input_tokens": completion.input_tokens,
            "output_tokens": completion.output_tokens,
            "cost_usd": completion.raw.get("cost_usd"),
            "cached": completion.cached,
        }
        return new, record


def make_compactor(threshold: float | None, window_tokens: int | None, root_spec: str) -> Compactor | None:
    """The compactor of a root LM ``root_spec``: ``window_tokens`` or its known window, at
    ``threshold``; None when either is missing (compaction off)."""
    window = window_tokens or known_window(root_spec)
    if threshold is None or not window:
        return None
    return Compactor(window, threshold)
