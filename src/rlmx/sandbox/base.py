"""The REPL seam (DESIGN.md: ``REPL.run``) and the JSON-able messages crossing it.

The REPL runs model-written code in a separate process. The orchestrator only sees JSON:
a :class:`ContextSpec` to open the lazy ``context``, ``code`` to run, :class:`ToolRequest`s
that the code raises (``llm_query``, ``llm_query_batched``, ``rlm_query``, ``search``) and a
:class:`StepResult` per step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "REPL",
    "ContextDoc",
    "ContextSpec",
    "FinalSignal",
    "SpanEvent",
    "StepResult",
    "ToolRequest",
    "ToolResolver",
]


class ContextDoc(BaseModel):
    """One document as the REPL sees it.

    ``text_path``/``index_path``: local files of the canonical text and its offset index
    (:mod:`rlmx.corpus.canonical`); ``length``: code points of the whole canonical text.
    ``window``: ``(start, end)`` when the REPL may only see that range (a child execution
    given a slice); offsets the model sees are then relative to ``start``, offsets in the
    span log stay absolute.
    """

    doc_id: str
    name: str
    length: int
    text_path: str
    index_path: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    window: tuple[int, int] | None = None


class ContextSpec(BaseModel):
    """What the REPL needs to open ``context``. ``index_path``: a local copy of the FTS5
    index of the corpus (:mod:`rlmx.corpus.corpus_index`; a child's windows keep the parent's):
    the REPL never opens it (the sandbox grants it no access); the orchestrator answers the
    REPL's ``search`` requests from it, restricted to this spec's documents; ``kind``: ``"corpus"`` (a list of
    DocViews) or ``"text"`` (a single string-like document, as in the paper)."""

    docs: list[ContextDoc]
    index_path: str | None = None
    kind: Literal["corpus", "text"] = "corpus"


class SpanEvent(BaseModel):
    """An entry of the REPL's span log. ``kind``: ``"read"`` (text returned to the code —
    slicing, ``Hit.text``) or ``"scan"`` (a grep/search/find match, not a citation by
    itself). ``subcalls``: ids of sub-calls whose prompt contained this span's text.
    Offsets are absolute code points of the document's canonical text."""

    kind: Literal["read", "scan"]
    doc_id: str
    start: int
    end: int
    turn: int = 0
    subcalls: list[str] = Field(default_factory=list)


class FinalSignal(BaseModel):
    """The code ended the execution. ``kind``: FINAL, FINAL_VAR or SUBMIT. ``citations``:
    what the code passed, normalised to ``{"doc_id", "start", "end"}`` dicts (absolute).
    ``fields``: SUBMIT's keyword arguments (JSON-able)."""

    kind: Literal["FINAL", "FINAL_VAR", "SUBMIT"]
    answer: str
    citations: list[dict[str, Any]] | None = None
    fields: dict[str, Any] | None = None


class ToolRequest(BaseModel):
    """A request raised by code in a step. ``kind`` and ``payload``:

    * ``llm_query``: ``{"prompt": str, "model": str|None, "subcall_id": str}``
    * ``llm_query_batched``: ``{"prompts": [str], "model": str|None, "subcall_ids": [str]}``
    * ``rlm_query``: ``{"prompt": str, "context": ContextSpec-dict|None, "subcall_id": str}``
    * ``search``: ``{"query": str, "k": int, "doc_ids": [str], "windows": [[doc_id, start,
      end]]}`` — ``context.search``/``doc.search`` (BM25 over the store's FTS index, which
      the sandbox cannot open). ``windows``: the views searched (absolute offsets). The
      orchestrator answers from the index of the execution's **own** ``ContextSpec``,
      keeping only its documents and ranges (whatever ids or windows the request names),
      with ``None`` when the index does not cover every document of the spec (the REPL then
      scans), else up to ``k`` rows ``[doc_id, start, end, score, w]``, best first: a chunk
      clipped to ``windows[w]``. Not a sub-call: no sub-call budget, not in the trace.
      Request ids are ``t{turn}.s{n}``.
    * ``tool``: ``{"name": str, "args": [JSON], "kwargs": {str: JSON}, "subcall_id": str}`` —
      a custom tool registered in the orchestrator (docs/repl.md); ids ``t{turn}.x{n}``;
      the result is any JSON value. Counted by ``max_tool_calls``, not ``max_sub_calls``.

    The resolver returns ``str`` (or ``list[str]`` for batches, rows for ``search``);
    raising makes the call raise inside the code.
    """

    id: str
    kind: Literal["llm_query", "llm_query_batched", "rlm_query", "search", "tool"]
    payload: dict[str, Any]


ToolResolver = Callable[[ToolRequest], Awaitable[Any]]


class StepResult(BaseModel):
    """The outcome of one step.

    ``stdout``: printed output, capped at the REPL's output cap (characters) — truncation
    for the root LM happens in the engine; ``error``: the traceback's last lines or the
    limit that was hit; ``span_log``: events of this step; ``duration_s``: wall seconds;
    ``timed_out``: the step hit its wall-clock limit (the REPL was restarted and restored
    from the snapshot of the previous step); ``variables``: names defined in the namespace
    after the step; ``notes``: what the sandbox tells the model besides the code's output
    (a restart and what was restored, variables that cannot be saved in the snapshot) —
    show them in the observation.
    """

    stdout: str = ""
    error: str | None = None
    final: FinalSignal | None = None
    span_log: list[SpanEvent] = Field(default_factory=list)
    duration_s: float = 0.0
    timed_out: bool = False
    variables: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class REPL(ABC):
    """A Python REPL in its own process, over a lazy ``context``.

    Lifecycle: ``await start()`` once, ``await run(...)`` per step (variables persist),
    ``await close()``. ``run`` never raises for errors of the code (they are in
    ``StepResult.error``); it raises :class:`~rlmx.errors.ReplError` when the process
    cannot be (re)started.
    """

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def run(self, code: str, *, turn: int, resolver: ToolResolver) -> StepResult: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> REPL:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
