"""REPL helpers beyond :class:`~rlmx.sandbox.namespace.ReplTools` (docs/repl.md):
``llm_query_async``, ``rlm_query_async``, ``wait`` (futures, :mod:`.futures`),
``rlm_query_batched`` (child RLMs in parallel), and the stubs of the custom tools the
orchestrator registered (``tool`` requests, ids ``t{turn}.x{n}``; the functions themselves
run in the orchestrator's process, never here).

``ExtraTools(base, channel)``: ``base`` numbers sub-calls, tags prompts in the span log and
builds child contexts; ``channel`` is the worker's (:func:`.futures.submit` sends over it).
"""

from __future__ import annotations

import keyword
from typing import Any

from .futures import Handle, submit, wait
from .namespace import BudgetExceeded, ReplTools, ToolError, _prompt_text

__all__ = ["ExtraTools"]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


class ExtraTools:
    """The helpers of the module doc; :meth:`names` gives the fixed ones, :meth:`define`
    adds (or replaces) the custom tool stubs from the specs a ``run`` message carries."""

    def __init__(self, base: ReplTools, channel: Any) -> None:
        self.base = base
        self.channel = channel
        self.tool_specs: list[dict[str, Any]] | None = None
        self._tools_turn = -1
        self._tools_n = 0

    def names(self) -> dict[str, Any]:
        return {
            "llm_query_async": self.llm_query_async,
            "rlm_query_async": self.rlm_query_async,
            "rlm_query_batched": self.rlm_query_batched,
            "wait": wait,
        }

    def _on_budget(self, message: str) -> None:
        self.base.budget_error = message

    # -- futures ---------------------------------------------------------------------
    def llm_query_async(self, prompt: str) -> Handle:
        """Start ``llm_query(prompt)`` and return its handle at once (``.result()``)."""
        text = _prompt_text(prompt, "llm_query_async")
        (sid,) = self.base._ids(1)
        self.base.log.tag(text, sid)
        payload = {"prompt": text, "model": None, "subcall_id": sid}
        return submit(self.channel, "llm_query", sid, payload, self._on_budget, _text)

    def rlm_query_async(self, prompt: str, context: Any = None, *, _failed_raises: bool = False) -> Handle:
        """Start ``rlm_query(prompt, context)`` (a child RLM) and return its handle at once."""
        text = _prompt_text(prompt, "rlm_query_async")
        spec = self.base._child_context(context)
        (sid,) = self.base._ids(1)
        self.base.log.tag(text, sid)
        if spec is not None and "text" in spec:
            self.base.log.tag(spec["text"], sid)
        payload: dict[str, Any] = {"prompt": text, "context": spec, "subcall_id": sid}
        if _failed_raises:
            payload["failed_raises"] = True
        return submit(self.channel, "rlm_query", sid, payload, self._on_budget, _text)

    def rlm_query_batched(self, prompts: list[str], contexts: list[Any] | None = None) -> list[str]:
        """Run a child RLM per prompt, in parallel (``contexts[i]``: the i-th child's
        context, as ``rlm_query``'s; None: this context). Returns the answers in order; a
        child that fails gives its error text (``"Error: ..."``) and the others complete.
        A spent budget ends the step once every started child has ended."""
        if isinstance(prompts, str):
            raise TypeError("rlm_query_batched(prompts): pass a list of prompts")
        prompts = list(prompts)
        ctxs = [None] * len(prompts) if contexts is None else list(contexts)
        if len(ctxs) != len(prompts):
            raise ValueError(f"rlm_query_batched: {len(prompts)} prompts but {len(ctxs)} contexts")
        handles = [self.rlm_query_async(p, c, _failed_raises=True) for p, c in zip(prompts, ctxs, strict=True)]
        out: list[str] = []
        spent: BudgetExceeded | None = None
        for h in handles:
            try:
                out.append(h.result())
            except BudgetExceeded as e:
                spent = spent or e
                out.append(f"Error: {e}")
            except ToolError as e:
                out.append(f"Error: {e}")
        if spent is not None:
            raise spent
        return out

    # -- custom tools ----------------------------------------------------------------
    def define(self, specs: Any, injected: dict[str, Any], ns: dict[str, Any]) -> None:
        """Install the stubs of ``specs`` (``[{"name", "signature", "doc"}]``) into
        ``injected`` and ``ns`` (once; the same specs again change nothing). Malformed
        entries and names that are not identifiers, or that shadow a helper, are skipped."""
        if not isinstance(specs, list) or specs == self.tool_specs:
            return
        reserved = set(self.base.names()) | set(self.names())
        for spec in specs:
            name = spec.get("name") if isinstance(spec, dict) else None
            if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or name in reserved:
                continue
            stub = self._stub(name, str(spec.get("signature") or "(*args, **kwargs)"), str(spec.get("doc") or ""))
            injected[name] = stub
            ns[name] = stub
        self.tool_specs = specs

    def _tool_id(self) -> str:
        with self.base._lock:
            if self._tools_turn != self.base.turn:
                self._tools_turn, self._tools_n = self.base.turn, 0
            self._tools_n += 1
            return f"t{self.base.turn}.x{self._tools_n}"

    def _stub(self, name: str, signature: str, doc: str) -> Any:
        def tool(*args: Any, **kwargs: Any) -> Any:
            rid = self._tool_id()
            payload = {"name": name, "args": list(args), "kwargs": kwargs, "subcall_id": rid}
            return self.base._call("tool", rid, payload)

        tool.__name__ = tool.__qualname__ = name
        tool.__doc__ = f"{name}{signature}\n\n{doc}".rstrip()  # help(tool) shows the real signature
        return tool
