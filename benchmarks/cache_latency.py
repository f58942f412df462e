"""LLM-cache hit latency through the LM stack an execution uses.

Usage: ``.venv/bin/python benchmarks/cache_latency.py [--calls 2000] [--entries 10000]``.

The stack is the one ``RLM`` builds for every sub-call (``RLM.make_tree``: ``BudgetedLM(
CachedLM(ConcurrencyLimitedLM(RetryingLM(client))))``, the cache in the embedded SQLite store of a
fresh ``RLMX_HOME``). The store is first filled with ``--entries`` cached completions;
then ``--calls`` requests that are all hits are timed one by one (``time.perf_counter``
around ``await lm.complete(...)``), for a sub-call sized prompt (2,000 characters) and a
root call with a long history (20 messages, 40,000 characters). Prints median and p95 in
milliseconds (target: median ≤ 1 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from typing import Any

from rlmx import RLM
from rlmx.engine.orchestrator import Engine
from rlmx.lm import ScriptedLM


def _messages(i: int, long: bool) -> list[dict[str, str]]:
    if not long:
        return [{"role": "user", "content": f"prompt {i}: " + "lorem ipsum dolor sit amet " * 74}]
    history = [{"role": "system", "content": "You are the root LM. " * 100}]
    for t in range(19):
        role = "assistant" if t % 2 else "user"
        history.append({"role": role, "content": f"turn {t} of call {i}: " + "x = context[0:100]\n" * 100})
    return history


async def _measure(calls: int, entries: int) -> dict[str, Any]:
    out: dict[str, Any] = {"calls": calls, "entries": entries}
    with tempfile.TemporaryDirectory() as home:
        rlm = RLM(model=ScriptedLM(lambda m: "cached reply " * 20), home=home)
        lm = rlm.make_tree(Engine(rlm.store, rlm.options)).sub_lm  # the stack sub-calls go through
        for i in range(entries):  # fill the cache (misses)
            await lm.complete(_messages(i, long=i % 10 == 0))
        for label, long in (("sub-call prompt (2,000 chars)", False), ("root call, 20 messages (40,000 chars)", True)):
            keys = [i for i in range(entries) if (i % 10 == 0) == long][:calls]
            times = []
            for i in keys * max(1, calls // max(1, len(keys))):
                msgs = _messages(i, long)
                t0 = time.perf_counter()
                c = await lm.complete(msgs)
                times.append(time.perf_counter() - t0)
                assert c.cached
            times.sort()
            out[label] = {
                "n": len(times),
                "median_ms": round(statistics.median(times) * 1e3, 4),
                "p95_ms": round(times[int(0.95 * (len(times) - 1))] * 1e3, 4),
            }
        rlm.store.close()
    return out


def run(calls: int = 2000, entries: int = 10_000) -> dict[str, Any]:
    return asyncio.run(_measure(calls, entries))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    r = run(a.calls, a.entries)
    if a.json:
        print(json.dumps(r))
        return 0
    print(f"cache entries: {r['entries']:,}")
    for label, v in r.items():
        if isinstance(v, dict):
            print(f"{label:<40} n={v['n']:<6} median {v['median_ms']:.3f} ms   p95 {v['p95_ms']:.3f} ms")
    print("target: median <= 1 ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
