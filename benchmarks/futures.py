"""Futures for sub-calls, whole ``rlmx ask`` processes, the way a user sees them.

Usage: ``.venv/bin/python benchmarks/futures.py [--runs 3] [--calls 8] [--latency-ms 500]
[--corpus PATH]``.

One root step asks ``--calls`` sub-LM questions of a local OpenAI-compatible server
(:class:`rlmx.dev.MockLLMServer`, every reply after ``--latency-ms``) and scans the context
(40 regex passes over every document), then FINAL on turn 2. Variants of that step:

* ``sequential``: a loop of ``llm_query``, then the scan;
* ``async``: ``llm_query_async`` for each, the scan while they run, then ``wait``;
* ``batched``: ``llm_query_batched``, then the scan.

Prints min / median / max wall seconds of the whole process per variant (interleaved run by
run), plus the scan alone (``calls=0``) as the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rlmx.dev import MockLLMServer

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "state_union"
SCAN = "hits = sum(len(context.grep(p)) for p in [f'\\\\b{w}' for w in 'abcdefghijklmnopqrst'] * 2)"


def step(variant: str, calls: int) -> str:
    asks = f"[f'question {{i}}' for i in range({calls})]"
    if variant == "sequential":
        return f"outs = [llm_query(q) for q in {asks}]\n{SCAN}\nprint(len(outs), hits)"
    if variant == "async":
        return f"hs = [llm_query_async(q) for q in {asks}]\n{SCAN}\nouts = wait(hs)\nprint(len(outs), hits)"
    if variant == "batched":
        return f"outs = llm_query_batched({asks})\n{SCAN}\nprint(len(outs), hits)"
    return f"{SCAN}\nprint(0, hits)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--calls", type=int, default=8)
    ap.add_argument("--latency-ms", type=float, default=500.0)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    a = ap.parse_args()
    variants = ["scan only", "sequential", "async", "batched"]
    times: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as home, MockLLMServer(latency_ms=a.latency_ms, default="ok") as srv:
        env = {**os.environ, "RLMX_HOME": home, "OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-local"}
        ingest = [sys.executable, "-m", "rlmx.cli", "ingest", str(a.corpus)]
        subprocess.run(ingest, env=env, check=True, capture_output=True)
        for _ in range(a.runs):
            for v in variants:
                script = Path(home) / "root.json"
                code = step(v, 0 if v == "scan only" else a.calls)
                script.write_text(json.dumps([f"```repl\n{code}\n```", "```repl\nFINAL('done')\n```"]))
                cmd = [sys.executable, "-m", "rlmx.cli", "ask", str(a.corpus), "q?", "-q", "--no-cache"]
                cmd += ["--model", f"scripted:{script}", "--sub-model", "openai:mock-sub"]
                t = time.monotonic()
                p = subprocess.run(cmd, env=env, capture_output=True, text=True)
                times[v].append(time.monotonic() - t)
                if p.returncode != 0:
                    raise SystemExit(f"{v}: exit {p.returncode}\n{p.stderr[-2000:]}")
    print(f"{a.calls} sub-calls at {a.latency_ms:g} ms, {a.runs} runs, corpus {a.corpus.name}")
    for v in variants:
        ts = times[v]
        print(f"{v:>11}: min {min(ts):.2f} s  median {statistics.median(ts):.2f} s  max {max(ts):.2f} s")


if __name__ == "__main__":
    main()
