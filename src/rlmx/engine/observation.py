"""The observation after a turn: what the root LM reads in answerer mode and what a
runtime-mode client gets back from a step (one function for both, DESIGN.md "The REPL
contract"): the turn's printed output truncated head + tail (``RLMX_OUTPUT_MAX_CHARS``,
:func:`~rlmx.engine.truncate.truncate_output`), the error and notes, the REPL's variables,
the query, the turns left and the budgets that are nearly spent — with the last turn
announced, and after it the closing request (``final_request.md``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..types import Budgets
from .prompts import load_prompt
from .truncate import truncate_output

__all__ = ["LAST_TURN_NOTE", "NEAR_FRACTION", "budget_note", "final_request", "no_code_observation", "observation_text"]

LAST_TURN_NOTE = "\nThis is your last turn: end it with FINAL(...) (or SUBMIT(...)), from what you have found."
"""Appended to the observation when one turn is left (answerer and runtime modes)."""

NEAR_FRACTION = 0.2
"""A budget is near when at most this fraction of it is left; the observation then says
what remains."""

_BUDGETS = (  # (key of BudgetTracker.left(), Budgets field, how to say it)
    ("sub_calls", "max_sub_calls", "{left:,} of {limit:,} sub-calls"),
    ("tokens", "max_total_tokens", "{left:,} of {limit:,} tokens"),
    ("cost_usd", "max_cost_usd", "${left:.4f} of ${limit:g}"),
)
# Wall seconds are left out on purpose: observations are a pure function of what the steps
# did (docs/architecture.md), so that identical runs send identical root messages (the LLM
# cache hits, a resumed execution replays without paying again); a clock reading is not.


def budget_note(left: Mapping[str, Any], budgets: Budgets) -> str | None:
    """One line naming each tree-wide budget with at most :data:`NEAR_FRACTION` of it left
    (``left``: :meth:`~rlmx.engine.budget.BudgetTracker.left`; sub-calls, tokens, USD —
    not wall seconds, see above), or None when none is near. Turns are said by the
    observation itself."""
    near = []
    for key, field, say in _BUDGETS:
        limit, rest = getattr(budgets, field), left.get(key)
        if limit is None or rest is None or limit <= 0:
            continue
        if rest <= limit * NEAR_FRACTION:
            near.append(say.format(left=rest, limit=limit))
    if not near:
        return None
    return "Budget nearly spent: " + "; ".join(near) + " left. Finish with what you have, or spend the rest carefully."


def final_request(*, max_turns: int, question: str) -> str:
    """The closing request after the last turn: give the final answer now (``final_request.md``)."""
    return load_prompt("final_request").format(max_turns=max_turns, question=question)


def observation_text(
    *,
    turn: int,
    output: str,
    error: str | None,
    notes: Sequence[str],
    variables: Sequence[str],
    question: str,
    turns_left: int,
    max_chars: int,
    budget: str | None = None,
) -> str:
    """The observation of turn ``turn``: ``output`` (its stdout) truncated to ``max_chars``
    characters head + tail with a marker saying how many were cut, ``error`` and ``notes``,
    up to 60 ``variables``, ``budget`` (:func:`budget_note`), ``question`` and
    ``turns_left`` (1: the last turn is announced; 0: the turns are spent and the closing
    request of :func:`final_request` follows)."""
    text = load_prompt("observation").format(
        turn=turn,
        output=truncate_output(output, max_chars) if output else "(no output)",
        error_block=(f"\nError:\n{error}" if error else "") + "".join(f"\nNote: {n}" for n in notes),
        variables_block=f"\nVariables: {', '.join(variables[:60])}" if variables else "",
        question=question,
        turns_left=turns_left,
    )
    if budget:
        text += "\n" + budget
    if turns_left == 1:
        return text + LAST_TURN_NOTE
    if turns_left <= 0:
        return text + "\n\n" + final_request(max_turns=turn, question=question)
    return text


def no_code_observation(question: str) -> str:
    """The observation of a response that had no ``repl`` block (nothing ran)."""
    return load_prompt("no_code").format(question=question)
