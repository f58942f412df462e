"""The tool resolver: answers the REPL's tool requests (DESIGN.md data flow).

``llm_query`` / ``llm_query_batched`` go to the sub-LM (through cache → budget → LM client
wrappers, with the tree's concurrency bound); ``rlm_query`` starts a child execution one
level deeper, or — at ``max_depth`` — is a plain sub-LM call (paper §2). Every sub-call is
written to the trace with its prompt, response, model, usage, cost and cache flag.

``search`` (``context.search`` in the REPL, which has no access to any FTS index) is
answered here by :class:`~rlmx.engine.context_search.ContextSearch` (over the execution's
own ``ContextSpec`` only). It is not a sub-call: no budget, no trace record.

``tool`` (a custom tool, :mod:`.tools`) runs the registered function in this process under
``max_tool_calls``, recorded in the trace with kind ``tool`` (replayed on resume).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ReplError
from ..lm.base import Completion
from ..sandbox.base import ContextSpec, ToolRequest
from ..types import SpanRef, Status
from .context_search import MAX_SEARCH_K, ContextSearch, search_context
from .tools import ToolCallError
from .trace import record_subcall

if TYPE_CHECKING:
    from .state import ExecutionState

__all__ = [
    "MAX_PARALLEL_CHILDREN",
    "MAX_SEARCH_K",
    "ContextSearch",
    "ToolResolverImpl",
    "max_parallel_children",
    "search_context",
]

MAX_PARALLEL_CHILDREN = 8
"""Default of :func:`max_parallel_children`."""


def max_parallel_children() -> int:
    """Child executions of one tree that run at once at each depth (``rlm_query_batched``,
    ``rlm_query_async``, threads): ``RLMX_MAX_PARALLEL_CHILDREN``, default
    :data:`MAX_PARALLEL_CHILDREN`. Each child is a REPL process; more wait their turn (their
    sub-call is already reserved)."""
    try:
        return max(1, int(os.environ.get("RLMX_MAX_PARALLEL_CHILDREN", MAX_PARALLEL_CHILDREN)))
    except ValueError:
        return MAX_PARALLEL_CHILDREN


class ToolResolverImpl:
    """Resolves the tool requests of one execution (``state``). Callable as a ``ToolResolver``."""

    def __init__(self, state: ExecutionState):
        self.state = state
        self.responses: dict[str, str] = {}
        self.child_citations: dict[str, list[SpanRef]] = {}
        self._search: ContextSearch | None = None

    async def __call__(self, req: ToolRequest) -> Any:
        p = req.payload
        if req.kind == "search":
            return await self.search(p)
        if req.kind == "tool":
            return await self.tool(p)
        if p.get("model"):
            raise ValueError("choosing a model per call is not supported; call without model=")
        if req.kind == "llm_query":
            return await self._llm(p["subcall_id"], str(p["prompt"]), "llm_query")
        if req.kind == "llm_query_batched":
            prompts = [str(x) for x in p["prompts"]]
            ids = list(p.get("subcall_ids") or [f"{req.id}.{i}" for i in range(len(prompts))])
            self.state.tree.tracker.reserve_sub_calls(len(prompts))  # all or nothing
            # every call of the batch ends (each releases its reservation when it does not
            # run) before the first error is raised: none is left running unanswered
            results = await asyncio.gather(
                *(self._llm(i, q, "llm_query_batched", reserved=True) for i, q in zip(ids, prompts, strict=True)),
                return_exceptions=True,
            )
            for r in results:
                if isinstance(r, BaseException):
                    raise r
            return list(results)
        if req.kind == "rlm_query":
            failed_raises = bool(p.get("failed_raises"))  # rlm_query_batched: a failed child is its error
            return await self._rlm(p["subcall_id"], str(p["prompt"]), p.get("context"), failed_raises)
        raise ValueError(f"unknown tool request {req.kind!r}")

    @property
    def repl_tools(self) -> list[dict[str, str]] | None:
        """The custom tools' specs for the REPL's stubs (None: no tools; see :mod:`.tools`)."""
        tools = self.state.tree.engine.options.tools
        return tools.repl_specs() if tools else None

    async def tool(self, payload: Mapping[str, Any]) -> Any:
        """Answer a ``tool`` request: reserve ``max_tool_calls``, run the registered function
        in this process (:meth:`~rlmx.engine.tools.ToolRegistry.call`, with its timeout) and
        record the call (kind ``tool``; failed calls too, with ``error``). Returns its JSON
        result; raises ToolCallError (the call's error in the code) or BudgetExceededError."""
        st = self.state
        registry = st.tree.engine.options.tools
        sid = str(payload.get("subcall_id"))
        name, args, kwargs = payload.get("name"), payload.get("args", []), payload.get("kwargs", {})
        if not registry:
            raise ToolCallError("no custom tools are registered in this execution")
        st.tree.tracker.reserve_tool_calls()
        self._started(sid, "tool")
        t0 = time.monotonic()
        error: str | None = None
        try:
            value = await registry.call(name, args, kwargs)
        except ToolCallError as e:
            value, error = None, str(e)
        except BaseException:
            st.tree.tracker.release_tool_calls()  # cancelled (the step ended) before an outcome
            raise
        call = f"{name}(*{json.dumps(args, default=str)[:2000]}, **{json.dumps(kwargs, default=str)[:2000]})"
        response = json.dumps(value, ensure_ascii=False) if error is None else ""
        await self._record(sid, "tool", call, response, seconds=time.monotonic() - t0, tool=str(name), error=error)
        if error is not None:
            raise ToolCallError(error)
        return value

    async def search(self, payload: Mapping[str, Any]) -> list[list[Any]] | None:
        """Answer a ``search`` request from the execution's own spec (not a sub-call: no
        budget, no trace record)."""
        if self._search is None or self._search.spec is not self.state.spec:
            self._search = ContextSearch(self.state.spec)
        return await asyncio.to_thread(self._search, payload)

    async def _llm(self, subcall_id: str, prompt: str, kind: str, *, reserved: bool = False) -> str:
        tree = self.state.tree
        if not reserved:
            tree.tracker.reserve_sub_calls()
        self._started(subcall_id, kind)
        t0 = time.monotonic()
        try:
            completion: Completion = await tree.sub_lm.complete([{"role": "user", "content": prompt}])
        except BaseException:
            tree.tracker.release_sub_calls()  # it never gave a result: not a sub-call that ran
            raise
        await self._record(
            subcall_id,
            kind,
            prompt,
            completion.text,
            completion=completion,
            seconds=time.monotonic() - t0,
        )
        return completion.text

    async def _rlm(
        self, subcall_id: str, prompt: str, context: dict[str, Any] | None, failed_raises: bool = False
    ) -> str:
        st = self.state
        depth = st.depth + 1
        if depth > st.tree.budgets.max_depth:
            return await self._llm(subcall_id, prompt, "rlm_query")
        spec = self._child_spec(context)
        st.tree.tracker.reserve_sub_calls()
        self._started(subcall_id, "rlm_query")
        t0 = time.monotonic()
        try:
            async with st.tree.tracker.child_slot(depth, max_parallel_children()):
                child = await st.tree.engine.run_execution(
                    st.tree,
                    question=prompt,
                    spec=spec,
                    corpus_id=st.corpus_id,
                    depth=depth,
                    parent_id=st.execution_id,
                    root_id=st.root_id,
                    schema=None,
                )
        except BaseException:
            st.tree.tracker.release_sub_calls()  # cancelled (or a bug) before it had an outcome
            raise
        self.child_citations[subcall_id] = child.citations
        failed = None
        if failed_raises and child.status in (Status.FAILED, Status.CANCELLED):
            failed = f"the child RLM {child.execution_id} ended {child.status.value}: {child.error}"
        failure: dict[str, Any] = {"error": failed} if failed else {}
        await self._record(
            subcall_id,
            "rlm_query",
            prompt,
            child.text,
            child_id=child.execution_id,
            seconds=time.monotonic() - t0,
            status=str(child.status),
            **failure,
        )
        if st.tree.tracker.exceeded is not None:
            raise st.tree.tracker.exceeded
        if failed:
            raise ToolCallError(failed)  # rlm_query_batched: this child's answer is its error text
        return child.text

    def _child_spec(self, context: dict[str, Any] | None) -> ContextSpec:
        """The child's context: the parent's (None), inline text, or windows on the parent's
        documents. Paths always come from the parent's spec, never from the REPL."""
        parent = self.state.spec
        if context is None:
            return parent
        if "text" in context:
            return self.state.tree.engine.inline_spec(str(context["text"]))
        asked = ContextSpec.model_validate(context)
        by_id = {d.doc_id: d for d in parent.docs}
        docs = []
        for d in asked.docs:
            base = by_id.get(d.doc_id)
            if base is None:
                raise ReplError(f"rlm_query context names a document not in this context: {d.doc_id}")
            lo, hi = base.window or (0, base.length)
            w = d.window or (lo, hi)
            window = (max(lo, min(w[0], hi)), max(lo, min(w[1], hi)))
            docs.append(base.model_copy(update={"window": window}))
        return ContextSpec(docs=docs, index_path=parent.index_path, kind=asked.kind)

    async def _record(
        self,
        subcall_id: str,
        kind: str,
        prompt: str,
        response: str,
        *,
        completion: Completion | None = None,
        seconds: float,
        **extra: Any,
    ) -> None:
        self.responses[subcall_id] = response
        data: dict[str, Any] = {
            "id": subcall_id,
            "kind": kind,
            "turn": self.state.turn,
            "prompt": prompt,
            "response": response,
            "seconds": round(seconds, 4),
            **extra,
        }
        if completion is not None:
            data.update(
                model=completion.spec,
                input_tokens=completion.input_tokens,
                output_tokens=completion.output_tokens,
                cached=completion.cached,
                cache_error=completion.raw.get("cache_error"),
                cost_usd=completion.raw.get("cost_usd"),
            )
        # a store write, off the event loop and batched with the other sub-calls' (issue 10)
        await record_subcall(self.state.tree.engine.store.meta, self.state.execution_id, data)
        numbers = ("turn", "seconds", "model", "input_tokens", "output_tokens", "cost_usd", "child_id", "status")
        self.state.tree.emit(
            "subcall",
            {"input": [{"role": "user", "content": prompt}], "output": response} if completion else None,
            execution_id=self.state.execution_id,
            depth=self.state.depth,
            id=subcall_id,
            kind=kind,
            cached=bool(completion and completion.cached),
            **{k: data[k] for k in numbers if k in data},
        )

    def _started(self, subcall_id: str, kind: str) -> None:
        st = self.state
        st.tree.emit("subcall_started", execution_id=st.execution_id, depth=st.depth, id=subcall_id, kind=kind)
