"""Measured traces against the pre-run cost estimate (``RLM.estimate``).

Usage::

    rlmx bench generate sniah --n 3 --lengths 8k,64k --out /tmp/e/sniah.jsonl   # also oolong, oolong-pairs
    rlmx bench run /tmp/e/*.jsonl --methods rlm-d1 --home /tmp/e/home --out /tmp/e/res.jsonl
    .venv/bin/python benchmarks/estimate_check.py /tmp/e/res.jsonl --home /tmp/e/home

For every result: the execution's trace (tokens per root turn, sub-calls and their tokens)
and the estimate made afresh for the same corpus, question, models and budgets. Prints one
row per task and a summary: per-turn root tokens and per-sub-call tokens (measured), and how
many runs fell below, inside or above the expected range, and whether any exceeded the worst
case (it must not).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from rlmx import RLM
from rlmx.engine.trace import load_trace
from rlmx.errors import ConfigError


def _q(values: list[int]) -> str:
    if not values:
        return "-"
    qs = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return f"{min(values):,}/{qs[0]:,.0f}/{qs[1]:,.0f}/{qs[2]:,.0f}/{max(values):,}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--home", type=Path, required=True)
    args = ap.parse_args(argv)
    rows = [json.loads(line) for line in args.results.read_text(encoding="utf-8").splitlines() if line.strip()]
    turn_in: list[int] = []
    turn_out: list[int] = []
    sub_in: list[int] = []
    sub_out: list[int] = []
    where = {"below": 0, "inside": 0, "above": 0}
    over_worst = 0
    print("| task | chars | turns | sub-calls | tokens | est. low | est. high | est. worst |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    rlms: dict[tuple[str, str, str], RLM] = {}
    for r in rows:
        if not r.get("execution_id"):
            continue
        probe = RLM(model="baseline", home=args.home, cache=False)
        rec = probe.store.meta.get_execution(r["execution_id"])
        trace: dict[str, Any] = load_trace(probe.store.meta, r["execution_id"])
        turn_in += [int(t.get("input_tokens") or 0) for t in trace["turns"]]
        turn_out += [int(t.get("output_tokens") or 0) for t in trace["turns"]]
        sub_in += [int(s.get("input_tokens") or 0) for s in trace["subcalls"]]
        sub_out += [int(s.get("output_tokens") or 0) for s in trace["subcalls"]]
        key = (rec.root_model, rec.sub_model, json.dumps(rec.budgets, sort_keys=True))
        if key not in rlms:
            try:
                rlms[key] = RLM(model=rec.root_model, sub_model=rec.sub_model, budgets=rec.budgets, home=args.home)
            except ConfigError:  # a bench-only sub-LM (the oolong label oracle): same window and price
                rlms[key] = RLM(model=rec.root_model, sub_model="baseline", budgets=rec.budgets, home=args.home)
        est = rlms[key].estimate(probe.store.meta.get_corpus(rec.corpus_id), rec.question)
        total = int(r["input_tokens"]) + int(r["output_tokens"])
        lo, hi, worst = est.low.total_tokens or 0, est.high.total_tokens or 0, est.worst.total_tokens
        where["below" if total < lo else "above" if total > hi else "inside"] += 1
        over_worst += worst is not None and total > worst
        print(
            f"| {r['task_id']} | {r['context_chars']:,} | {r['turns']} | {r['sub_calls']} | {total:,} "
            f"| {lo:,} | {hi:,} | {'unbounded' if worst is None else f'{worst:,}'} |"
        )
    print()
    print(f"root turn input tokens (min/p25/p50/p75/max): {_q(turn_in)}")
    print(f"root turn output tokens: {_q(turn_out)}")
    print(f"sub-call input tokens: {_q(sub_in)}; output tokens: {_q(sub_out)}")
    print(f"runs vs expected range: {where}; runs above the worst case: {over_worst}")


if __name__ == "__main__":
    main()
