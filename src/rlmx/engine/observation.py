"""The observation after a turn: what the root LM reads in answerer mode and what a
runtime-mode client gets back from a step (one function for both, DESIGN.md "The REPL
contract"): the turn's printed output truncated head + tail (``RLMX_OUTPUT_MAX_CHARS``,
:func:`~rlmx.engine.truncate.truncate_output`), the error and notes, the REPL's variables,
the query, and the turns left — with the last turn announced."""

from __future__ import annotations

from collections.abc import Sequence

from .prompts import load_prompt
from .truncate import truncate_output

__all__ = ["LAST_TURN_NOTE", "no_code_observation", "observation_text"]

LAST_TURN_NOTE = "\nThis is your last turn: end it with FINAL(...) (or SUBMIT(...)), from what you have found."
"""Appended to the observation when one turn is left (answerer and runtime modes)."""


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
) -> str:
    """The observation of turn ``turn``: ``output`` (its stdout) truncated to ``max_chars``
    characters head + tail with a marker saying how many were cut, ``error`` and ``notes``,
    up to 60 ``variables``, ``question`` and ``turns_left`` (1: the last turn is announced)."""
    text = load_prompt("observation").format(
        turn=turn,
        output=truncate_output(output, max_chars) if output else "(no output)",
        error_block=(f"\nError:\n{error}" if error else "") + "".join(f"\nNote: {n}" for n in notes),
        variables_block=f"\nVariables: {', '.join(variables[:60])}" if variables else "",
        question=question,
        turns_left=turns_left,
    )
    return text + LAST_TURN_NOTE if turns_left == 1 else text


def no_code_observation(question: str) -> str:
    """The observation of a response that had no ``repl`` block (nothing ran)."""
    return load_prompt("no_code").format(question=question)
