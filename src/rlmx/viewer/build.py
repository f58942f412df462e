"""Building the trace viewer's view-model (:mod:`.model`) from a trace
(:func:`rlmx.engine.trace.load_trace`) and the citation windows read from the store
(:mod:`.source`): pure functions, no I/O.

Long texts are capped (:data:`TEXT_CAP` characters for the root LM's messages and the
REPL's output, :data:`SUBCALL_TEXT_CAP` for a sub-call's prompt and response) so a page
stays bounded however large the trace is; a capped text says how many characters it had.
Times are seconds; costs USD (None: a model had no known price); offsets characters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .model import (
    BudgetRow,
    CitationView,
    CitationWindow,
    ExecutionView,
    PageView,
    SubcallView,
    TextView,
    TurnView,
    citation_key,
    dom_id,
)

__all__ = ["SUBCALL_TEXT_CAP", "TEXT_CAP", "build_view", "parse_variables"]

TEXT_CAP = 20_000
"""Characters of a root LM message, output or observation the page shows."""
SUBCALL_TEXT_CAP = 8_000
"""Characters of a sub-call's prompt or response the page shows."""

_VARIABLES = re.compile(r"^Variables: (.*)$", re.MULTILINE)


def _text(value: Any, cap: int) -> TextView | None:
    if value is None:
        return None
    s = value if isinstance(value, str) else str(value)
    return TextView(s[:cap], len(s))


def parse_variables(turn: Mapping[str, Any]) -> list[str]:
    """The REPL's variable names after the turn's step: the record's ``variables`` when it
    has them, else the ``Variables:`` line of its observation; [] when neither says."""
    names = turn.get("variables")
    if isinstance(names, list):
        return [str(n) for n in names]
    m = _VARIABLES.search(str(turn.get("observation") or ""))
    return [v.strip() for v in m.group(1).split(",") if v.strip()] if m else []


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) else 0.0


def _subcall(s: Mapping[str, Any]) -> SubcallView:
    cost = s.get("cost_usd")
    seconds = s.get("seconds")
    return SubcallView(
        id=str(s.get("id", "")),
        kind=str(s.get("kind", "")),
        turn=int(s.get("turn") or 0),
        model=str(s.get("model") or ""),
        cached=bool(s.get("cached")),
        cache_error=s.get("cache_error"),
        abandoned=bool(s.get("abandoned")),
        input_tokens=int(s.get("input_tokens") or 0),
        output_tokens=int(s.get("output_tokens") or 0),
        cost_usd=float(cost) if isinstance(cost, int | float) else None,
        seconds=float(seconds) if isinstance(seconds, int | float) else None,
        prompt=_text(s.get("prompt"), SUBCALL_TEXT_CAP),
        response=_text(s.get("response"), SUBCALL_TEXT_CAP),
        child_id=s.get("child_id"),
    )


def _budgets(budgets: Mapping[str, Any], usage: Mapping[str, Any]) -> list[BudgetRow]:
    tokens = None
    if "input_tokens" in usage or "output_tokens" in usage:
        tokens = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
    return [
        BudgetRow("turns", budgets.get("max_turns"), usage.get("turns")),
        BudgetRow("sub-calls", budgets.get("max_sub_calls"), usage.get("sub_calls")),
        BudgetRow("tokens (in + out)", budgets.get("max_total_tokens"), tokens),
        BudgetRow("cost", budgets.get("max_cost_usd"), usage.get("cost_usd"), "usd"),
        BudgetRow("wall time", budgets.get("max_wall_seconds"), usage.get("wall_seconds"), "s"),
        BudgetRow("depth", budgets.get("max_depth"), usage.get("max_depth_reached")),
    ]


def _citations(
    ex_dom: str, cites: list[Any], windows: Mapping[tuple[str, int, int], CitationWindow | str]
) -> list[CitationView]:
    out = []
    for i, c in enumerate(cites, 1):
        if not isinstance(c, dict):
            continue
        key = citation_key(c)
        w = windows.get(key)
        window = w if isinstance(w, CitationWindow) else None
        out.append(
            CitationView(
                index=i,
                dom_id=f"{ex_dom}-c{i}",
                doc_id=key[0],
                doc_name=str(c.get("doc_name") or key[0]),
                start=key[1],
                end=key[2],
                checksum=str(c.get("checksum") or ""),
                text=str(c.get("text") or ""),
                window=window,
                ok=bool(window and window.ok),
                reason=(window.reason if window else str(w or "the cited text was not read")),
            )
        )
    return out


def _seconds_between(a: str | None, b: str | None) -> float:
    from datetime import datetime

    if not a or not b:
        return 0.0
    try:
        return max((datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds(), 0.0)
    except ValueError:
        return 0.0


def _execution(
    trace: Mapping[str, Any],
    windows: Mapping[tuple[str, int, int], CitationWindow | str],
    tree_start: str | None,
) -> ExecutionView:
    ex = trace["execution"]
    dom = dom_id(str(ex["execution_id"]))
    by_turn: dict[int, list[SubcallView]] = {}
    for s in trace.get("subcalls", []):
        sv = _subcall(s)
        by_turn.setdefault(sv.turn, []).append(sv)
    turns: list[TurnView] = []
    offset = 0.0
    for t in trace.get("turns", []):
        n = int(t.get("turn") or 0)
        timing = t.get("timings") or {}
        total = _num(timing.get("total_s")) or _num(timing.get("root_s")) + _num(timing.get("step_s"))
        cost = t.get("cost_usd")
        prompt = t.get("prompt") if isinstance(t.get("prompt"), list) else []
        turns.append(
            TurnView(
                number=n,
                dom_id=f"{dom}-t{n}",
                response=_text(t.get("response"), TEXT_CAP),
                code=t.get("code"),
                stdout=_text(t.get("stdout") or None, TEXT_CAP),
                observation=_text(t.get("observation"), TEXT_CAP),
                error=_text(t.get("error"), TEXT_CAP),
                variables=parse_variables(t),
                final=t.get("final"),
                prompt=[
                    {"role": str(m.get("role", "")), "content": str(m.get("content", ""))[:TEXT_CAP]}
                    for m in prompt
                    if isinstance(m, dict)
                ],
                cached=bool(t.get("cached")),
                root_model=str(t.get("root_model") or ""),
                input_tokens=int(t.get("input_tokens") or 0),
                output_tokens=int(t.get("output_tokens") or 0),
                cost_usd=float(cost) if isinstance(cost, int | float) else None,
                root_s=_num(timing.get("root_s")),
                step_s=_num(timing.get("step_s")),
                total_s=total,
                offset_s=offset,
                timed_out=bool(t.get("timed_out")),
                spans_read=len(t.get("span_log") or []),
                sandbox_warnings=[str(w) for w in t.get("sandbox_warnings") or []],
                subcalls=by_turn.pop(n, []),
            )
        )
        offset += total
    usage = ex.get("usage") or {}
    view = ExecutionView(
        id=str(ex["execution_id"]),
        dom_id=dom,
        parent_id=ex.get("parent_id"),
        depth=int(ex.get("depth") or 0),
        status=str(ex.get("status", "")),
        mode=str(ex.get("mode", "")),
        question=str(ex.get("question", "")),
        root_model=str(ex.get("root_model", "")),
        sub_model=str(ex.get("sub_model", "")),
        answer=ex.get("answer"),
        fields=ex.get("fields"),
        error=ex.get("error"),
        created_at=str(ex.get("created_at") or ""),
        finished_at=ex.get("finished_at"),
        usage=usage,
        budgets=_budgets(ex.get("budgets") or {}, usage),
        citations=_citations(dom, ex.get("citations") or [], windows),
        turns=turns,
        other_subcalls=[s for n in sorted(by_turn) for s in by_turn[n]],
        start_s=_seconds_between(tree_start, ex.get("created_at")),
        wall_s=_num(usage.get("wall_seconds"))
        or _seconds_between(ex.get("created_at"), ex.get("finished_at"))
        or offset,
    )
    view.children = [_execution(c, windows, tree_start) for c in trace.get("children", [])]
    return view


def build_view(
    trace: Mapping[str, Any], windows: Mapping[tuple[str, int, int], CitationWindow | str] | None = None
) -> PageView:
    """The page of ``trace`` (the shape of :func:`rlmx.engine.trace.load_trace`).
    ``windows`` maps :func:`citation_key` to the text around each cited span, or to the
    reason it could not be read; citations missing from it show "not read"."""
    tree_start = trace["execution"].get("created_at")
    root = _execution(trace, windows or {}, tree_start)
    page = PageView(root=root, span_s=0.0)
    page.span_s = max((e.start_s + e.wall_s for e in page.executions()), default=0.0) or 1e-9
    return page
