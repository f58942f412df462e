"""The closing step of an execution whose max turns are spent: one last root call answers
the closing request (:func:`.observation.final_request`), and its answer is the model's — a
``FINAL`` (in text or code, run in the REPL), else its prose, never the REPL's output."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..lm.base import Message
from ..sandbox.base import REPL, FinalSignal
from ..store.base import MetadataStore
from .blocks import parse_response
from .observation import final_request
from .observers import turn_event
from .schema import OutputSchema

if TYPE_CHECKING:
    from .resolver import ToolResolverImpl
    from .state import ExecutionState

__all__ = ["closing_step"]


async def closing_step(
    st: ExecutionState,
    repl: REPL,
    resolver: ToolResolverImpl,
    messages: list[Message],
    question: str,
    schema: OutputSchema | None,
    meta: MetadataStore,
) -> tuple[FinalSignal, dict[str, Any] | None]:
    """Answer the closing request that ends the last observation in ``messages``; the turn
    is committed to ``meta`` (turn ``st.turn + 1``) and a ``turn_finished`` event emitted.
    Returns the final signal and the schema's fields of it (None without a schema or when
    they do not validate). Raises ProviderError, BudgetExceededError, ExecutionCancelled."""
    await st.tree.acheck_stop()
    ask = final_request(max_turns=st.tree.budgets.max_turns, question=question)
    last = messages[-1] if messages else None
    if last is None or last.get("role") != "user" or ask not in str(last.get("content") or ""):
        messages = [*messages, {"role": "user", "content": ask}]  # a trace from before the request was inlined
    completion = await st.tree.root_lm.complete(messages)
    parsed = parse_response(completion.text)
    final: FinalSignal | None = None
    code = parsed.code or (f"FINAL_VAR({parsed.final_var!r})" if parsed.final_var else None)
    if parsed.final_text is not None:
        final = FinalSignal(kind="FINAL", answer=parsed.final_text)
    elif code is not None:
        step = await repl.run(code, turn=st.turn + 1, resolver=resolver)
        st.log_spans(step.span_log)
        final = step.final
    if final is None:
        final = FinalSignal(kind="FINAL", answer=(parsed.prose or "").strip())  # no prose: no answer
    record = {
        "turn": st.turn + 1,
        "depth": st.depth,
        "final_request": ask,
        "response": completion.text,
        "final": final.model_dump(),
        "root_model": completion.spec,
        "cached": completion.cached,
        "input_tokens": completion.input_tokens,
        "output_tokens": completion.output_tokens,
        "cost_usd": completion.raw.get("cost_usd"),
    }
    await asyncio.to_thread(meta.add_turn, st.execution_id, st.turn + 1, record)
    st.tree.emit(
        "turn_finished", {"input": messages[-1:], "output": completion.text}, **turn_event(st.execution_id, record)
    )
    return final, (schema.fields_or_none(final) if schema is not None else None)
