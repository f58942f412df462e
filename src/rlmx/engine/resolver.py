"""The tool resolver: answers the REPL's tool requests (DESIGN.md data flow).

``llm_query`` / ``llm_query_batched`` go to the sub-LM (through cache → budget → LM client
wrappers, with the tree's concurrency bound); ``rlm_query`` starts a child execution one
level deeper, or — at ``max_depth`` — is a plain sub-LM call (paper §2). Every sub-call is
written to the trace with its prompt, response, model, usage, cost and cache flag.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ..errors import ReplError
from ..lm.base import Completion
from ..sandbox.base import ContextSpec, ToolRequest
from ..types import SpanRef

if TYPE_CHECKING:
    from .orchestrator import ExecutionState

__all__ = ["ToolResolverImpl"]


class ToolResolverImpl:
    """Resolves the tool requests of one execution (``state``). Callable as a ``ToolResolver``."""

    def __init__(self, state: ExecutionState):
        self.state = state
        self.responses: dict[str, str] = {}
        self.child_citations: dict[str, list[SpanRef]] = {}

    async def __call__(self, req: ToolRequest) -> Any:
        p = req.payload
        if p.get("model"):
            raise ValueError("choosing a model per call is not supported; call without model=")
        if req.kind == "llm_query":
            return await self._llm(p["subcall_id"], str(p["prompt"]), "llm_query")
        if req.kind == "llm_query_batched":
            prompts = [str(x) for x in p["prompts"]]
            ids = list(p.get("subcall_ids") or [f"{req.id}.{i}" for i in range(len(prompts))])
            self.state.tree.tracker.reserve_sub_calls(len(prompts))  # all or nothing
            return list(
                await asyncio.gather(
                    *(self._llm(i, q, "llm_query_batched", reserved=True) for i, q in zip(ids, prompts, strict=True))
                )
            )
        if req.kind == "rlm_query":
            return await self._rlm(p["subcall_id"], str(p["prompt"]), p.get("context"))
        raise ValueError(f"unknown tool request {req.kind!r}")

    async def _llm(self, subcall_id: str, prompt: str, kind: str, *, reserved: bool = False) -> str:
        tree = self.state.tree
        if not reserved:
            tree.tracker.reserve_sub_calls()
        t0 = time.monotonic()
        completion: Completion = await tree.sub_lm.complete([{"role": "user", "content": prompt}])
        self._record(
            subcall_id,
            kind,
            prompt,
            completion.text,
            completion=completion,
            seconds=time.monotonic() - t0,
        )
        return completion.text

    async def _rlm(self, subcall_id: str, prompt: str, context: dict[str, Any] | None) -> str:
        st = self.state
        depth = st.depth + 1
        if depth > st.tree.budgets.max_depth:
            return await self._llm(subcall_id, prompt, "rlm_query")
        st.tree.tracker.reserve_sub_calls()
        spec = self._child_spec(context)
        t0 = time.monotonic()
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
        self.child_citations[subcall_id] = child.citations
        self._record(
            subcall_id,
            "rlm_query",
            prompt,
            child.text,
            child_id=child.execution_id,
            seconds=time.monotonic() - t0,
            status=str(child.status),
        )
        if st.tree.tracker.exceeded is not None:
            raise st.tree.tracker.exceeded
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

    def _record(
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
                cost_usd=completion.raw.get("cost_usd"),
            )
        self.state.tree.engine.store.meta.add_subcall(self.state.execution_id, data)
        self.state.tree.emit(
            "subcall",
            execution_id=self.state.execution_id,
            id=subcall_id,
            kind=kind,
            cached=bool(completion and completion.cached),
        )
