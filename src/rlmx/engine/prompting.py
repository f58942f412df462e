"""The root LM's first messages: the system prompt (what the context is, the REPL's
helpers as this execution's budgets allow them, the output limit, ``SUBMIT`` when an output
schema is given) and the question. The prompts are data files (``engine/prompts/``); the
shape follows the paper's RLM system prompt (Zhang, Kraska & Khattab, arXiv 2512.24601,
Appendix C): the context's type and sizes, never its text."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..lm.base import Message
from ..sandbox.base import ContextDoc, ContextSpec
from ..types import Budgets
from .prompts import load_prompt

if TYPE_CHECKING:
    from .schema import OutputSchema
    from .state import EngineOptions

__all__ = [
    "PROMPT_DOCS",
    "chunk_chars",
    "context_description",
    "context_summary",
    "first_user_message",
    "root_messages",
    "root_system_prompt",
]


PROMPT_DOCS = 50
"""How many documents the root prompt names (with their lengths); the rest are listed by code."""


def _length(d: ContextDoc) -> int:
    return (d.window[1] - d.window[0]) if d.window else d.length


def context_summary(spec: ContextSpec, offset: int = 0, limit: int = PROMPT_DOCS) -> dict[str, Any]:
    """``spec`` in numbers: ``n_docs``, ``total_chars`` and the documents ``offset`` to
    ``offset + limit`` as ``{index, name, length}`` (characters), with ``next_offset``
    (None after the last page)."""
    offset, limit = max(0, offset), max(0, limit)
    page = spec.docs[offset : offset + limit]
    nxt = offset + len(page)
    return {
        "n_docs": len(spec.docs),
        "total_chars": sum(_length(d) for d in spec.docs),
        "offset": offset,
        "docs": [{"index": offset + i, "name": d.name, "length": _length(d)} for i, d in enumerate(page)],
        "next_offset": nxt if nxt < len(spec.docs) else None,
    }


def chunk_chars(sub_lm_chars: int) -> int:
    """The chunk size in characters the prompt advises for aggregation: a quarter of what
    the sub-LM reads in one prompt (``sub_lm_chars``, characters), so that its instructions
    fit and it reads carefully, rounded to thousands, between 4,000 and 100,000. The
    paper (arXiv 2512.24601, Appendix C) gives its sub-LM "about 500K characters" and
    chunks well below that; the quarter is our choice, not the paper's."""
    return max(4_000, min(100_000, (sub_lm_chars // 4) // 1000 * 1000))


def context_description(spec: ContextSpec) -> dict[str, Any]:
    """The prompt's fields about ``spec``: its type, total length, the names and lengths
    in characters of the first ``PROMPT_DOCS`` documents (and how to list the rest), and
    how to use it."""
    lengths = [_length(d) for d in spec.docs]
    shown = "\n".join(f"- [{i}] {d.name!r}: {_length(d):,}" for i, d in enumerate(spec.docs[:PROMPT_DOCS]))
    if len(lengths) > PROMPT_DOCS:
        shown += (
            f"\n- … {len(lengths) - PROMPT_DOCS:,} more: `context.names[{PROMPT_DOCS}:]` lists their names, "
            f"`[(d.name, len(d)) for d in context[{PROMPT_DOCS}:]]` their lengths"
        )
    if spec.kind == "text":
        ctype, help_ = (
            "str",
            (
                "the text itself; it behaves like a Python `str` (`len(context)`, `context[a:b]`, "
                "`context.find(...)`), and slicing never loads more than the slice."
            ),
        )
    else:
        ctype, help_ = (
            "list of documents",
            (
                "a list of documents. `len(context)` is the number of documents; `context[i]` is a "
                "document view with `.name`, `.id`, `.meta`, `len(doc)` in characters, `doc[a:b]` "
                "returning text, and `doc.find(...)`, `doc.grep(...)`. `context.doc(name)` is the "
                "document of that name (or id); `context.names` lists the names."
            ),
        )
    return {
        "context_type": ctype,
        "total_chars": f"{sum(lengths):,}",
        "n_docs": len(lengths),
        "doc_listing": shown or "(none)",
        "context_help": help_,
    }


def root_system_prompt(
    spec: ContextSpec,
    options: EngineOptions,
    budgets: Budgets,
    depth: int,
    schema: OutputSchema | None,
) -> str:
    """The root LM's system prompt for an execution at ``depth`` over ``spec`` (the text
    answerer mode sends, and runtime mode hands its client): sub-calls and ``rlm_query``
    are described as ``budgets`` allow them (disabled without a sub-call budget;
    ``rlm_query`` a plain sub-LM call at the maximum depth)."""
    if budgets.max_sub_calls == 0:
        sub_help = "`llm_query` and `llm_query_batched` are disabled in this execution (no sub-call budget)."
        rlm_help = "`rlm_query` is disabled too: work with the REPL alone."
    else:
        sub_help = (
            f"`llm_query(prompt) -> str` asks a sub-LM (it can read about {options.sub_lm_chars:,} characters "
            "in one prompt). `llm_query_batched(prompts) -> list[str]` runs many prompts concurrently: "
            "prefer it over a loop of `llm_query`. `llm_query_async(prompt)` returns a handle at once "
            "(`h.result(timeout=None)`, `wait(handles) -> list`), so your code keeps working while it runs."
        )
        rlm_help = "`rlm_query(prompt, context=None) -> str` " + (
            "starts a child RLM, with its own REPL, on `context` (a document view, hits, a slice "
            "you read, or any text; default: this context) and returns its answer. "
            "`rlm_query_batched(prompts, contexts=None) -> list[str]` runs children in parallel (a failed "
            "child's answer is its error text); `rlm_query_async(prompt, context=None)` returns a handle."
            if depth + 1 <= budgets.max_depth
            else "is a plain sub-LM call here (maximum recursion depth reached)."
        )
    submit = load_prompt("submit_help").format(schema=json.dumps(schema.json_schema)) if schema else ""
    if budgets.max_sub_calls == 0:
        strategy = load_prompt("strategy_no_sub")
    else:
        size = chunk_chars(options.sub_lm_chars)
        code = load_prompt("chunk_text" if spec.kind == "text" else "chunk_corpus").format(size=size)
        strategy = load_prompt("strategy").format(chunk_chars=size, chunking_code=code.rstrip("\n"))
    tools = options.tools
    tools_help = load_prompt("tools_help").format(tool_listing=tools.prompt_listing()) if tools else ""
    return load_prompt("root_system").format(
        **context_description(spec),
        tools_help=tools_help,
        sub_lm_help=sub_help,
        output_chars=f"{options.output_max_chars:,}",
        rlm_query_help=rlm_help,
        submit_help=submit,
        strategy=strategy.rstrip("\n"),
    )


def first_user_message(question: str) -> str:
    """The user message of turn 1: the question and how to start (``first_turn.md``)."""
    return load_prompt("first_turn").format(question=question)


def root_messages(
    spec: ContextSpec,
    question: str,
    options: EngineOptions,
    budgets: Budgets,
    depth: int,
    schema: OutputSchema | None,
) -> list[Message]:
    """``[system, user]`` for turn 1 of an execution (see :func:`root_system_prompt`)."""
    return [
        {"role": "system", "content": root_system_prompt(spec, options, budgets, depth, schema)},
        {"role": "user", "content": first_user_message(question)},
    ]
