"""Start-up of the ``rlmx`` command, whole processes, the way a user sees it.

Usage: ``.venv/bin/python benchmarks/startup.py [--runs 10] [--corpus PATH]``.

Measured, interleaved run by run (so a loaded machine slows every row alike):

* ``rlmx --help`` and ``rlmx verify FILE`` (an empty citation list): wall time of the process;
* ``rlmx ask --model openai:mock CORPUS QUESTION`` on a corpus already ingested into a fresh
  ``RLMX_HOME``: seconds from spawning the process to the first root call reaching a local
  OpenAI-compatible server (:class:`rlmx.dev.MockLLMServer`, 0 ms latency; the time is taken
  in the server when the request arrives), and the whole process (FINAL on turn 1);
* ``python -c pass``: the interpreter's own floor.

Prints min / median / max per row, in seconds. ``--src LABEL=DIR`` (repeatable) runs the
same rows for each source tree (``PYTHONPATH=DIR python -m rlmx.cli``), interleaved, e.g.
before/after a change: ``git archive HEAD src | tar -x -C /tmp/before``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rlmx.dev import MockLLMServer

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "state_union"
RLMX = [sys.executable, "-m", "rlmx.cli"]


def _run(cmd: list[str], env: dict[str, str]) -> float:
    t = time.monotonic()
    p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - t
    if p.returncode not in (0,):
        raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.decode()[-2000:]}")
    return wall


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--src", action="append", default=[], metavar="LABEL=DIR", help="a source tree to compare")
    args = ap.parse_args(argv)
    variants = [tuple(v.split("=", 1)) for v in args.src] or [("rlmx", "")]
    first_call: list[float] = []

    def script(model: str, messages: list[dict[str, Any]]) -> str:
        if sum(m["role"] == "assistant" for m in messages) == 0:
            first_call.append(time.monotonic())
        return "```repl\nFINAL('done')\n```"

    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as home, MockLLMServer(scripts=script) as srv:
        base = dict(os.environ, RLMX_HOME=home, OPENAI_BASE_URL=srv.base_url, OPENAI_API_KEY="test")
        empty = Path(home) / "empty.json"
        empty.write_text("[]")
        envs = {label: dict(base, PYTHONPATH=src) if src else base for label, src in variants}
        _run([*RLMX, "ingest", "--quiet", str(args.corpus)], envs[variants[0][0]])
        ask = [*RLMX, "ask", "--quiet", "--no-cache", "--model", "openai:mock", str(args.corpus), "start-up benchmark"]
        for _ in range(args.runs):
            rows.setdefault("python -c pass", []).append(_run([sys.executable, "-c", "pass"], base))
            for label, env in envs.items():
                rows.setdefault(f"{label}: rlmx --help", []).append(_run([*RLMX, "--help"], env))
                rows.setdefault(f"{label}: rlmx verify (empty list)", []).append(
                    _run([*RLMX, "verify", str(empty)], env)
                )
                n = len(first_call)
                t0 = time.monotonic()
                wall = _run(ask, env)
                if len(first_call) != n + 1:
                    raise SystemExit("rlmx ask made no root call")
                rows.setdefault(f"{label}: rlmx ask, spawn to first root call", []).append(first_call[-1] - t0)
                rows.setdefault(f"{label}: rlmx ask, whole process (FINAL, 1 turn)", []).append(wall)
    print(f"corpus: {args.corpus}; {args.runs} runs, interleaved; seconds")
    print(f"{'measure':<55} {'min':>7} {'median':>7} {'max':>7}")
    for name, xs in sorted(rows.items(), key=lambda kv: kv[0].split(": ")[-1]):
        print(f"{name:<55} {min(xs):7.3f} {statistics.median(xs):7.3f} {max(xs):7.3f}")


if __name__ == "__main__":
    main()
