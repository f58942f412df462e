"""Human-readable output of the CLI: answers with numbered citations, cost lines, traces."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from ..types import Answer

__all__ = ["answer_json", "cost_line", "print_answer", "print_trace"]


def cost_line(answer: Answer) -> str:
    u = answer.usage
    cost = "cost unknown (no price for a model)" if u.cost_usd is None else f"${u.cost_usd:.4f}"
    cached = f" ({u.cached_calls} cached)" if u.cached_calls else ""
    return (
        f"{answer.status.value} · {cost} · {u.turns} turns · {u.sub_calls} sub-calls{cached} · "
        f"{u.input_tokens:,} tokens in / {u.output_tokens:,} out · {u.wall_seconds:.1f} s · "
        f"execution {answer.execution_id}"
    )


def answer_json(answer: Answer) -> dict[str, Any]:
    """The ``--json`` object: execution_id, status, answer, citations[], usage, cost_usd."""
    return {
        "execution_id": answer.execution_id,
        "status": answer.status.value,
        "answer": answer.text,
        "citations": [c.model_dump() for c in answer.citations],
        "usage": answer.usage.model_dump(),
        "cost_usd": answer.cost_usd,
        "fields": answer.fields,
        "error": answer.error,
    }


def _excerpt(text: str, n: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def print_answer(answer: Answer, out: Console) -> None:
    out.print(answer.text, markup=False, highlight=False)
    if answer.error:
        out.print(f"\n[bold red]error:[/] {answer.error}", highlight=False)
    if answer.citations:
        out.print("\nCitations:")
        for i, c in enumerate(answer.citations, 1):
            out.print(
                f"  [{i}] {c.doc_name} [{c.start}:{c.end}] {c.checksum[:19]}… “{_excerpt(c.text)}”",
                markup=False,
                highlight=False,
            )
    out.print("\n" + cost_line(answer), markup=False, highlight=False)


def print_trace(trace: dict[str, Any], out: Console, indent: str = "") -> None:
    ex = trace["execution"]
    out.print(
        f"{indent}[bold]{ex['execution_id']}[/] depth {ex['depth']} · {ex['status']} · root "
        f"{ex['root_model']} · sub {ex['sub_model']}",
        highlight=False,
    )
    out.print(f"{indent}question: {_excerpt(ex['question'], 200)}", markup=False, highlight=False)
    subcalls_by_turn: dict[int, list[dict[str, Any]]] = {}
    for s in trace["subcalls"]:
        subcalls_by_turn.setdefault(int(s.get("turn", 0)), []).append(s)
    for t in trace["turns"]:
        timing = t.get("timings") or {}
        out.print(
            f"{indent}── turn {t['turn']} (root {timing.get('root_s', 0):.2f} s, step "
            f"{timing.get('step_s', 0):.2f} s){' cached' if t.get('cached') else ''}",
            highlight=False,
        )
        if t.get("code"):
            out.print(
                indent + "   code:\n" + "\n".join(indent + "     " + ln for ln in t["code"].splitlines()),
                markup=False,
                highlight=False,
            )
        if t.get("stdout"):
            out.print(f"{indent}   stdout: {_excerpt(t['stdout'], 400)}", markup=False, highlight=False)
        for w in t.get("sandbox_warnings") or []:
            out.print(f"{indent}   WARNING sandbox layer not active: {_excerpt(w, 300)}", markup=False, highlight=False)
        if t.get("error"):
            out.print(f"{indent}   error: {_excerpt(t['error'], 400)}", markup=False, highlight=False)
        for s in subcalls_by_turn.get(int(t["turn"]), []):
            out.print(
                f"{indent}   {s['kind']} {s['id']} {s.get('model', '')}{' cached' if s.get('cached') else ''}: "
                f"{_excerpt(s.get('response', ''), 120)}",
                markup=False,
                highlight=False,
            )
        if t.get("final"):
            out.print(
                f"{indent}   FINAL: {_excerpt(t['final']['answer'], 300)}",
                markup=False,
                highlight=False,
            )
    for child in trace["children"]:
        print_trace(child, out, indent + "    ")
    if ex.get("answer") is not None and not indent:
        out.print(f"answer: {_excerpt(ex['answer'], 400)}", markup=False, highlight=False)
