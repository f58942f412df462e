"""The answer to a runtime-mode step (:class:`~rlmx.engine.runtime.RuntimeExecution`): the
observation exactly as answerer mode's root LM would read it, the turns and budgets left,
the closing request once the turns are spent, the tool requests waiting for the client,
and, at the end, the answer with its citations. ``stdout`` and ``span_log`` are whole here;
the service drops them unless the client asks (``?include=stdout,span_log``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..sandbox.base import FinalSignal, StepResult
from ..types import Status
from .observation import budget_note, final_request, observation_text

if TYPE_CHECKING:
    from .orchestrator import ExecutionOutcome
    from .runtime import RuntimeExecution

__all__ = ["step_answer"]


def step_answer(
    rt: RuntimeExecution,
    step: StepResult | None,
    *,
    waiting: bool,
    error: str | None = None,
    final: FinalSignal | None = None,
    outcome: ExecutionOutcome | None = None,
) -> dict[str, Any]:
    """The JSON-ready step answer of ``rt`` after ``step`` (None: the step is waiting for
    tool results, or was cancelled). ``turns_left`` counts steps (0 after the last one: the
    next step is the closing step that ``final_request`` asks for); ``budget_left`` is
    :meth:`~rlmx.engine.budget.BudgetTracker.left`."""
    budgets = rt.tree.budgets
    turns_left = max(0, budgets.max_turns - rt.turn)
    running = rt.status is Status.RUNNING
    left = rt.tree.tracker.left()
    observation = None
    if step is not None and rt.turn <= budgets.max_turns:
        observation = observation_text(
            turn=rt.turn,
            output=step.stdout,
            error=error,
            notes=step.notes,
            variables=step.variables,
            question=rt.question,
            turns_left=turns_left,
            max_chars=rt.engine.options.output_max_chars,
            budget=budget_note(left, budgets),
        )
    closing = running and not waiting and rt.turn >= budgets.max_turns
    return {
        "execution_id": rt.execution_id,
        "turn": rt.turn,
        "status": rt.status.value,
        "waiting": waiting,
        "success": None if step is None else error is None,
        "observation": observation,
        "turns_left": turns_left,
        "last_turn": turns_left == 1 and running,
        "final_request": final_request(max_turns=budgets.max_turns, question=rt.question) if closing else None,
        "budget_left": left,
        "stdout": step.stdout if step else "",
        "error": error,
        "timed_out": step.timed_out if step else False,
        "span_log": [e.model_dump() for e in step.span_log] if step else [],
        "variables": step.variables if step else [],
        "tool_requests": rt.pending_requests() if waiting else [],
        "final": final.model_dump() if final else None,
        "answer": outcome.text if outcome else None,
        "citations": [c.model_dump() for c in outcome.citations] if outcome else [],
        "fields": outcome.fields if outcome else None,
    }
