"""End-to-end ``sniah`` at 1M tokens: wall time and peak memory of the orchestrator and
the REPL.

Usage: ``.venv/bin/python benchmarks/sniah_1m.py [--length 1m] [--n 1] [--methods rlm-d1]
[--model M --sub-model M]``.

The task file is generated first in a child process (``rlmx bench generate sniah``), so
this process's memory holds only what a run needs: the task (its ≈ 4.2 M-character
context), the store and the engine. Then every method runs through the benchmark runner
(offline ``baseline`` policies unless ``--model`` is given) in a fresh ``RLMX_HOME``.
Prints per run: status, score, ingestion seconds, the method's wall seconds; and the peak
RSS of this process (the orchestrator, ``getrusage(RUSAGE_SELF)``) and of the largest child
process (the REPL, ``getrusage(RUSAGE_CHILDREN)``), in MB (10^6 bytes).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rlmx.bench import BenchRunner, RunConfig, parse_lengths, parse_methods, read_tasks


def _mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss * 1024 / 1e6


def run(length: str = "1m", n: int = 1, methods: str = "rlm-d1", model: str | None = None,
        sub_model: str | None = None, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    parse_lengths(length)
    with tempfile.TemporaryDirectory() as tmp:
        tasks_file = Path(tmp) / "sniah.jsonl"
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "rlmx.cli", "bench", "generate", "sniah", "--n", str(n), "--seed", str(seed),
               "--lengths", length, "--out", str(tasks_file)]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        generate_s = time.perf_counter() - t0
        tasks = list(read_tasks(tasks_file))
        rss_loaded = _mb(resource.RUSAGE_SELF)
        config = RunConfig(methods=parse_methods(methods), model=model, sub_model=sub_model,
                           home=Path(tmp) / "home", cache=False)  # fmt: skip
        t0 = time.perf_counter()
        rows = BenchRunner(config).run(tasks, Path(tmp) / "results.jsonl")
        total_s = time.perf_counter() - t0
    return {
        "length_tokens": tasks[0].length_tokens,
        "context_chars": tasks[0].context_chars,
        "generate_s": round(generate_s, 2),
        "runs": [
            {k: r[k] for k in ("task_id", "method", "status", "score", "ingest_s", "wall_s", "turns", "input_tokens")}
            for r in rows
        ],
        "total_s": round(total_s, 2),
        "orchestrator_rss_after_loading_tasks_mb": round(rss_loaded),
        "orchestrator_peak_rss_mb": round(_mb(resource.RUSAGE_SELF)),
        "largest_child_peak_rss_mb": round(_mb(resource.RUSAGE_CHILDREN)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", default="1m")
    ap.add_argument("--n", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="rlm-d1")
    ap.add_argument("--model", default=None)
    ap.add_argument("--sub-model", default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    r = run(a.length, a.n, a.methods, a.model, a.sub_model, a.seed)
    if a.json:
        print(json.dumps(r))
        return 0
    size = f"{r['length_tokens']:,} tokens ({r['context_chars']:,} characters)"
    print(f"sniah at {size}; generated in {r['generate_s']} s")
    for x in r["runs"]:
        print(
            f"{x['task_id']} {x['method']:<9} {x['status']:<10} score {x['score']:.0f}  ingest {x['ingest_s']:.2f} s  "
            f"run {x['wall_s']:.2f} s  turns {x['turns']}  root input {x['input_tokens']:,} tokens"
        )
    print(f"total (ingest + runs): {r['total_s']} s")
    print(
        f"peak RSS: orchestrator {r['orchestrator_peak_rss_mb']} MB "
        f"({r['orchestrator_rss_after_loading_tasks_mb']} MB after loading the task); "
        f"largest child (REPL) {r['largest_child_peak_rss_mb']} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
