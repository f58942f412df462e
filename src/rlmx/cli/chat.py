"""``rlmx chat PATH...``: a prompt loop over one corpus, each question a follow-up of the one
before (``RLM.session``: the REPL's variables and the earlier answers carry over)."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console

__all__ = ["chat"]


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--model", help="Root LM spec (default: RLMX_MODEL, else an available provider, else baseline).")
@click.option("--sub-model", help="Sub-LM spec for llm_query (default: paired with --model).")
@click.option("--max-turns", type=click.IntRange(min=1), help="Root turns per question (default 30).")
@click.option("--max-sub-calls", type=click.IntRange(min=0), help="Sub-call budget per question.")
@click.option("--max-cost-usd", type=click.FloatRange(min=0), help="Cost budget per question, USD.")
@click.option("--follow", "follow", metavar="EXECUTION_ID", help="Go on from an earlier execution over this corpus.")
@click.option("--quiet", "-q", is_flag=True, help="No prompt, cost lines or notices on stderr.")
def chat(
    paths: tuple[str, ...],
    model: str | None,
    sub_model: str | None,
    max_turns: int | None,
    max_sub_calls: int | None,
    max_cost_usd: float | None,
    follow: str | None,
    quiet: bool,
) -> None:
    """Ask questions about the documents in PATH..., one per line on standard input (an empty
    line is skipped; `/quit` or end of input stops). Each answer is printed with its
    citations; each question is its own execution with its own budgets, following up the
    previous one. Exit status 0, or 2 for bad input."""
    from ..api import RLM
    from ..errors import RlmxError
    from ..types import Budgets
    from .render import cost_line

    out, err = Console(highlight=False, soft_wrap=True), Console(stderr=True, highlight=False)
    budgets: dict[str, Any] = {
        k: v
        for k, v in {"max_turns": max_turns, "max_sub_calls": max_sub_calls, "max_cost_usd": max_cost_usd}.items()
        if v is not None
    }
    try:
        rlm = RLM(
            model=model,
            sub_model=sub_model,
            budgets=Budgets(**budgets),
            notice=(lambda m: None) if quiet else (lambda m: err.print(m, markup=False)),
        )
        conversation = rlm.session(list(paths))
        conversation.last_id = follow
    except RlmxError as e:
        click.echo(f"rlmx: {e}", err=True)
        sys.exit(2)
    interactive = sys.stdin.isatty()
    if not quiet:
        err.print(f"[dim]{len(conversation.corpus.documents)} documents · root {rlm.root_spec} · /quit to stop[/]")
    while True:
        if interactive and not quiet:
            err.print("[bold]?[/] ", end="")
        line = sys.stdin.readline()
        if not line or line.strip() in ("/quit", "/exit"):
            break
        question = line.strip()
        if not question:
            continue
        try:
            answer = conversation.ask(question)
        except RlmxError as e:  # e.g. the follow-up cannot be followed: say so, stop
            click.echo(f"rlmx: {e}", err=True)
            sys.exit(2)
        out.print(answer.text or f"(no answer: {answer.error})", markup=False)
        for i, c in enumerate(answer.citations, 1):
            out.print(f"  [{i}] {c.doc_name} [{c.start}:{c.end}] “{' '.join(c.text.split())[:160]}”", markup=False)
        if not quiet:
            err.print(f"[dim]{cost_line(answer)}[/]", markup=True)
