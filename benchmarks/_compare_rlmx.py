"""rlmx's side of the per-turn row of ``benchmarks/compare.py`` (issue 10, item 6).

Usage (compare.py runs it): ``OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 OPENAI_API_KEY=mock
.venv/bin/python benchmarks/_compare_rlmx.py turns FILE --home DIR [--model rlmx-root]``.

The root LM is ``openai:MODEL`` through the real ``openai`` SDK and HTTP to the mock server
process whose script (written by compare.py) answers a step per turn and then the end; ``FILE``
is ingested into ``DIR`` before the clock starts (an already-ingested corpus). Prints one JSON
object: ``turn_s``, the seconds between consecutive ``turn_started`` events (N turns give
N - 1 figures, as the official side's), and the answer's status.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from typing import Any

from rlmx import RLM


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["turns"])
    ap.add_argument("context_file")
    ap.add_argument("--home", required=True, help="RLMX_HOME of this run")
    ap.add_argument("--model", default="rlmx-root", help="the root model's name in the server's script")
    ap.add_argument("--max-turns", type=int, default=200)
    args = ap.parse_args(argv)
    starts: list[float] = []

    def on_event(kind: str, _data: dict[str, Any]) -> None:
        if kind == "turn_started":
            starts.append(time.perf_counter())

    rlm = RLM(
        model=f"openai:{args.model}",
        budgets={"max_turns": args.max_turns},
        home=args.home,
        cache=False,
        on_event=on_event,
    )
    corpus = rlm.ingest(args.context_file)
    answer = rlm.ask(corpus, "per-turn benchmark")
    turn_s = [b - a for a, b in itertools.pairwise(starts)]
    print(json.dumps({"mode": args.mode, "turn_s": turn_s, "status": answer.status.value, "answer": answer.text}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
