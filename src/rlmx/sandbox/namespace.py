"""The functions model code calls inside the REPL process (DESIGN.md, "The REPL contract").

:class:`ReplTools` provides ``llm_query``, ``llm_query_batched``, ``rlm_query``, ``FINAL``,
``FINAL_VAR``, ``SUBMIT`` and ``SHOW_VARS``. Sub-calls go through a ``transport(kind,
request_id, payload) -> value`` callable (the worker's socket), which blocks until the
orchestrator answers and raises :class:`ToolError` or :class:`BudgetExceeded`. So does
``context.search`` (a ``search`` request, ids ``t{turn}.s{n}``, numbered apart from the
sub-calls): the REPL cannot open the store's search index; the orchestrator answers from it
for this context's documents only.

Control flow: ``FINAL``/``FINAL_VAR``/``SUBMIT`` raise :class:`FinalAnswer` and a spent
budget raises :class:`BudgetExceeded`; both derive from ``BaseException`` so that model
code's ``except Exception`` cannot swallow them. The tools also remember the signal, so
even a bare ``except:`` cannot hide it (the worker checks after the step).
"""

from __future__ import annotations

import json
import threading
import types
from collections.abc import Callable, Iterable
from typing import Any

from .context import ContextView, _Context, context_state
from .docview import DocView, Hit
from .spanlog import SpanLog

__all__ = [
    "BudgetExceeded",
    "FinalAnswer",
    "ReplSignal",
    "ReplTools",
    "ToolError",
    "normalise_citations",
    "user_variables",
]

Transport = Callable[[str, str, dict[str, Any]], Any]


class ReplSignal(BaseException):
    """Base of the signals that end a step and that ``except Exception`` does not catch."""


class FinalAnswer(ReplSignal):
    """``FINAL``/``FINAL_VAR``/``SUBMIT`` was called; ``signal`` is a FinalSignal dict."""

    def __init__(self, signal: dict[str, Any]) -> None:
        super().__init__(f"{signal['kind']} called")
        self.signal = signal


class BudgetExceeded(ReplSignal):
    """A budget of the execution tree is spent: no further sub-calls; the step stops."""


class ToolError(RuntimeError):
    """A sub-call failed in the orchestrator (provider error, bad request...)."""


def _prompt_text(x: Any, fn: str) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, DocView):
        return str(x)
    if isinstance(x, Hit):
        return x.text
    hint = "; pass several prompts to llm_query_batched" if isinstance(x, list | tuple) else ""
    raise TypeError(f"{fn}: a prompt must be a str, got {type(x).__name__}{hint}")


def _span(view: DocView, start: Any, end: Any, what: str) -> dict[str, Any]:
    """Absolute citation dict for view-relative ``[start, end)``; ValueError when outside."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
        raise TypeError(f"citation {what}: start and end must be int")
    if not 0 <= start <= end <= len(view):
        raise ValueError(f"citation {what}: span {start}:{end} is outside document {view.name!r} (length {len(view)})")
    lo = view.window[0]
    return {"doc_id": view.id, "start": lo + start, "end": lo + end}


def normalise_citations(cits: Any, ctx: _Context, log: SpanLog) -> list[dict[str, Any]] | None:
    """Normalise what the code passed to ``FINAL(..., citations=...)`` to absolute
    ``{"doc_id", "start", "end"}`` dicts.

    Accepted (one or a list): a :class:`Hit`; a :class:`DocView` (the whole view); a dict
    ``{"doc_id"|"doc", "start", "end"}`` or a tuple ``(doc, start, end)`` where ``doc`` is a
    DocView, an index, a doc_id or a name and offsets are relative to the view (as the code
    sees them); an object with ``doc_id``/``start``/``end`` attributes (a SpanEvent:
    absolute); a str equal to text the code read. Raises ``TypeError``/``ValueError``.
    """
    if cits is None:
        return None
    single = (Hit, DocView, dict, str)
    if isinstance(cits, single) or (isinstance(cits, tuple) and len(cits) == 3 and isinstance(cits[1], int)):
        cits = [cits]
    if not isinstance(cits, Iterable):
        raise TypeError("citations must be a list of hits, spans or (doc, start, end) tuples")
    out: list[dict[str, Any]] = []
    for i, c in enumerate(cits):
        what = f"#{i}"
        if isinstance(c, Hit):
            out.append(_span(c.doc, c.start, c.end, what))
        elif isinstance(c, DocView):
            out.append(_span(c, 0, len(c), what))
        elif isinstance(c, dict):
            ref = c.get("doc_id", c.get("doc"))
            if ref is None or "start" not in c or "end" not in c:
                raise ValueError(f"citation {what}: a dict needs doc_id, start and end")
            out.append(_span(ctx.resolve(ref), c["start"], c["end"], what))
        elif isinstance(c, tuple | list) and len(c) == 3:
            out.append(_span(ctx.resolve(c[0]), c[1], c[2], what))
        elif isinstance(c, str):
            found = log.find_read(c)
            if found is None:
                raise ValueError(
                    f"citation {what}: this text was not read from context; cite hits, "
                    "documents, or (doc, start, end) spans instead"
                )
            out.append({"doc_id": found[0], "start": found[1], "end": found[2]})
        elif all(hasattr(c, a) for a in ("doc_id", "start", "end")):
            views = [v for v in ctx.views if v.id == c.doc_id]
            if not any(v.window[0] <= c.start <= c.end <= v.window[1] for v in views):
                raise ValueError(f"citation {what}: span is not inside a document of context")
            out.append({"doc_id": c.doc_id, "start": int(c.start), "end": int(c.end)})
        else:
            raise TypeError(
                f"citation {what}: expected a Hit, a document, a dict or a (doc, start, end) "
                f"tuple, got {type(c).__name__}"
            )
    return out


def user_variables(ns: dict[str, Any], injected: dict[str, Any]) -> list[str]:
    """Names the code defined: not private, not modules, not the injected tools."""
    return [
        k
        for k, v in ns.items()
        if not k.startswith("_") and not isinstance(v, types.ModuleType) and not (k in injected and injected[k] is v)
    ]


class ReplTools:
    """The REPL's tool functions over ``context`` (see module doc).

    ``ReplTools(context, log, transport, schema_fields=None)``; :meth:`begin_step` sets the
    turn; :meth:`names` returns the dict injected into the namespace ``ns``.
    """

    def __init__(
        self,
        context: ContextView | DocView,
        log: SpanLog,
        transport: Transport,
        schema_fields: list[str] | None = None,
    ) -> None:
        self.context = context
        self.ctx = context_state(context)
        self.log = log
        self.transport = transport
        self.schema_fields = schema_fields
        self.ns: dict[str, Any] = {}
        self.turn = 0
        self.final: dict[str, Any] | None = None
        self.budget_error: str | None = None
        self._n = 0
        self._searches = 0
        self._lock = threading.Lock()
        self.ctx.searcher = self._search
        self._names: dict[str, Any] = {
            "context": self.context,
            "llm_query": self.llm_query,
            "llm_query_batched": self.llm_query_batched,
            "rlm_query": self.rlm_query,
            "FINAL": self.FINAL,
            "FINAL_VAR": self.FINAL_VAR,
            "SUBMIT": self.SUBMIT,
            "SHOW_VARS": self.SHOW_VARS,
        }

    def begin_step(self, turn: int, ns: dict[str, Any]) -> None:
        """Start a step: sub-call numbering restarts when the turn changes."""
        with self._lock:
            if turn != self.turn:
                self._n = 0
                self._searches = 0
            self.turn = turn
            self.ns = ns
            self.final = None
            self.budget_error = None

    def names(self) -> dict[str, Any]:
        """The names injected into the namespace (the same objects every time)."""
        return dict(self._names)

    def _ids(self, k: int) -> list[str]:
        with self._lock:
            first = self._n + 1
            self._n += k
            return [f"t{self.turn}.{i}" for i in range(first, first + k)]

    def _call(self, kind: str, rid: str, payload: dict[str, Any]) -> Any:
        try:
            return self.transport(kind, rid, payload)
        except BudgetExceeded as e:
            self.budget_error = str(e)
            raise

    def _search(self, payload: dict[str, Any]) -> Any:
        """``context.search``'s request to the orchestrator (see :mod:`.context`)."""
        with self._lock:
            self._searches += 1
            rid = f"t{self.turn}.s{self._searches}"
        return self._call("search", rid, payload)

    # -- sub-calls -----------------------------------------------------------------------
    def llm_query(self, prompt: str, model: str | None = None) -> str:
        """Ask the sub-LM ``prompt``; returns its reply (str). Raises ToolError on failure."""
        text = _prompt_text(prompt, "llm_query")
        (sid,) = self._ids(1)
        self.log.tag(text, sid)
        value = self._call("llm_query", sid, {"prompt": text, "model": model, "subcall_id": sid})
        return value if isinstance(value, str) else str(value)

    def llm_query_batched(self, prompts: list[str], model: str | None = None) -> list[str]:
        """Ask the sub-LM every prompt, resolved concurrently; replies in the same order."""
        if isinstance(prompts, str | DocView):
            raise TypeError("llm_query_batched(prompts): pass a list of prompts")
        texts = [_prompt_text(p, "llm_query_batched") for p in prompts]
        if not texts:
            return []
        sids = self._ids(len(texts))
        for t, sid in zip(texts, sids, strict=True):
            self.log.tag(t, sid)
        rid = sids[0] if len(sids) == 1 else f"{sids[0]}..{sids[-1].rsplit('.', 1)[1]}"
        value = self._call("llm_query_batched", rid, {"prompts": texts, "model": model, "subcall_ids": sids})
        if not isinstance(value, list) or len(value) != len(texts):
            raise ToolError("llm_query_batched: the orchestrator returned a malformed reply")
        return [v if isinstance(v, str) else str(v) for v in value]

    def rlm_query(self, prompt: str, context: Any = None) -> str:
        """Run a child RLM one level deeper on ``prompt``; returns its answer (str).
        ``context``: None (this context), a document, a hit, text read from context, a list
        of those, or any other str (the child's whole context)."""
        text = _prompt_text(prompt, "rlm_query")
        spec = self._child_context(context)
        (sid,) = self._ids(1)
        self.log.tag(text, sid)
        if spec is not None and "text" in spec:
            self.log.tag(spec["text"], sid)
        value = self._call("rlm_query", sid, {"prompt": text, "context": spec, "subcall_id": sid})
        return value if isinstance(value, str) else str(value)

    def _doc_spec(self, item: Any) -> dict[str, Any] | None:
        if isinstance(item, DocView):
            view, lo, hi = item, *item.window
        elif isinstance(item, Hit):
            view = item.doc
            lo, hi = view.window[0] + item.start, view.window[0] + item.end
        elif isinstance(item, str) and (found := self.log.find_read(item)) is not None:
            view = next(v for v in self.ctx.views if v.id == found[0])
            lo, hi = found[1], found[2]
        else:
            return None
        d = dict(view._src.spec)
        d["window"] = [lo, hi]
        return d

    def _child_context(self, context: Any) -> dict[str, Any] | None:
        if context is None or context is self.context:
            return None
        index_path = self.ctx.index_path
        if isinstance(context, list | tuple):
            docs = [self._doc_spec(c) for c in context]
            if any(d is None for d in docs) or not docs:
                raise TypeError("rlm_query(context=[...]): items must be documents, hits or text read from context")
            return {"docs": docs, "index_path": index_path, "kind": "corpus"}
        d = self._doc_spec(context)
        if d is not None:
            return {"docs": [d], "index_path": index_path, "kind": "text"}
        if isinstance(context, str):
            return {"text": context}
        raise TypeError(f"rlm_query(context=...): unsupported type {type(context).__name__}")

    # -- ending the execution ------------------------------------------------------------
    def _end(self, signal: dict[str, Any]) -> None:
        self.final = signal
        raise FinalAnswer(signal)

    def FINAL(self, answer: Any, citations: Any = None) -> None:
        """End the execution with ``answer`` (converted to str) and optional citations."""
        cits = normalise_citations(citations, self.ctx, self.log)
        text = answer if isinstance(answer, str) else str(answer)
        self._end({"kind": "FINAL", "answer": text, "citations": cits, "fields": None})

    def FINAL_VAR(self, name: Any, citations: Any = None) -> None:
        """End the execution with the value of the variable ``name`` (converted to str)."""
        if isinstance(name, str):
            if name not in self.ns:
                raise NameError(
                    f"FINAL_VAR({name!r}): no variable named {name!r}; assign it first, or call FINAL(answer)"
                )
            value = self.ns[name]
        else:
            value = name
        cits = normalise_citations(citations, self.ctx, self.log)
        text = value if isinstance(value, str) else str(value)
        self._end({"kind": "FINAL_VAR", "answer": text, "citations": cits, "fields": None})

    def SUBMIT(self, **fields: Any) -> None:
        """End the execution with the output schema's fields (JSON values)."""
        if self.schema_fields is None:
            raise RuntimeError(
                "SUBMIT is only available when an output schema was given; end with FINAL(answer) instead"
            )
        missing = [f for f in self.schema_fields if f not in fields]
        unknown = [f for f in fields if f not in self.schema_fields]
        if missing or unknown:
            raise TypeError(
                f"SUBMIT needs exactly the fields {self.schema_fields}; missing: {missing}, unknown: {unknown}"
            )
        clean = {
            k: (str(v) if isinstance(v, DocView) else v.text if isinstance(v, Hit) else v) for k, v in fields.items()
        }
        try:
            answer = json.dumps(clean, ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"SUBMIT fields must be JSON values (str, number, bool, None, list, dict): {e}") from None
        self._end({"kind": "SUBMIT", "answer": answer, "citations": None, "fields": clean})

    def SHOW_VARS(self) -> None:
        """Print the variables defined so far with their types."""
        names = user_variables(self.ns, self._names)
        if not names:
            print("(no variables yet)")
        for n in names:
            v = self.ns[n]
            size = f", len {len(v):,}" if isinstance(v, str | list | dict | tuple) else ""
            print(f"{n}: {type(v).__name__}{size}")
