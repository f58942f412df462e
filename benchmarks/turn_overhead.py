"""Orchestration overhead of a turn, outside LM latency and step time.

Usage: ``.venv/bin/python benchmarks/turn_overhead.py [--turns 100] [--corpus PATH] [--http]``.

``--http``: the root LM is ``openai:mock`` through rlmx's OpenAI client and HTTP to a local
:class:`rlmx.dev.MockLLMServer` (0 ms), the way a user's run goes; also prints the whole
time per turn (consecutive ``turn_started`` events) for the first and the last 10 turns.

A scripted root LM (zero latency) writes a trivial step (``x = turn``) each turn; the
execution runs through the real stack (LLM cache, budgets, REPL process, SQLite trace).
Per turn: overhead = (time between consecutive ``turn_started`` events) − root-LM call
time − REPL step time (round trip, as the engine measures it). Prints median and p95 in
milliseconds, and the REPL start + first-turn cost.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rlmx import RLM
from rlmx.lm import ScriptedLM

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "state_union"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=100)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--http", action="store_true", help="real SDK and HTTP to a local mock server")
    args = ap.parse_args(argv)
    events: list[tuple[float, str, dict[str, Any]]] = []

    def on_event(kind: str, data: dict[str, Any]) -> None:
        events.append((time.perf_counter(), kind, data))

    def script(messages: list[dict[str, str]]) -> str:
        n = sum(m["role"] == "assistant" for m in messages)
        return f"```repl\nx = {n}\n```" if n < args.turns - 1 else "```repl\nFINAL(str(x))\n```"

    with tempfile.TemporaryDirectory() as home, contextlib.ExitStack() as stack:
        model: Any = ScriptedLM(script)
        if args.http:
            from rlmx.dev import MockLLMServer
            from rlmx.lm.openai_client import OpenAIClient

            srv = stack.enter_context(MockLLMServer(scripts=lambda _model, messages: script(messages)))
            model = OpenAIClient("mock", base_url=srv.base_url, api_key="test")
        rlm = RLM(model=model, budgets={"max_turns": args.turns}, home=home, on_event=on_event, cache=False)
        corpus = rlm.ingest(args.corpus)
        t0 = time.perf_counter()
        answer = rlm.ask(corpus, "overhead benchmark")
        wall = time.perf_counter() - t0
    starts = [t for t, k, _ in events if k == "turn_started"]
    finished = [d for _, k, d in events if k == "turn_finished"]
    overheads = [
        (starts[i + 1] - starts[i]) - finished[i]["root_s"] - finished[i]["step_s"] for i in range(len(starts) - 1)
    ]
    first = starts[0] - t0
    xs = sorted(overheads)
    print(f"corpus: {args.corpus} ({len(corpus.documents)} documents); status {answer.status.value}")
    print(f"turns: {len(starts)}; wall {wall:.2f} s; execution start to first turn {first * 1e3:.1f} ms")
    print(
        f"turn overhead (excl. LM and step): median {statistics.median(xs) * 1e3:.2f} ms, "
        f"p95 {xs[int(0.95 * (len(xs) - 1))] * 1e3:.2f} ms"
    )
    steps = [d["step_s"] for d in finished]
    print(f"step round trip (x = n): median {statistics.median(steps) * 1e3:.2f} ms")
    whole = [starts[i + 1] - starts[i] for i in range(len(starts) - 1)]
    roots = [d["root_s"] for d in finished]
    print(f"root call (as the engine times it): median {statistics.median(roots) * 1e3:.2f} ms")
    if len(whole) >= 20:
        first, last = whole[:10], whole[-10:]
        print(
            f"whole turn: median {statistics.median(whole) * 1e3:.2f} ms; first 10 turns median "
            f"{statistics.median(first) * 1e3:.2f} ms, last 10 {statistics.median(last) * 1e3:.2f} ms"
        )


if __name__ == "__main__":
    main()
