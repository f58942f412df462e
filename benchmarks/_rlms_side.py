"""The official ``rlms`` library's side of ``benchmarks/compare.py`` (issue 10, item 6).

Run by the *rlms* venv's python (``.bench/rlms-venv/bin/python``), never by rlmx's: it imports
only ``rlm`` (the import name of PyPI ``rlms``) and the standard library. Every mode points
``rlm.RLM`` at a local OpenAI-compatible server (``--base-url``, ``rlmx dev mock-llm``) whose
script answers the root model ``--model`` (compare.py writes those scripts) and echoes any
other model (the sub-LM, ``sub``). Each mode prints one JSON object on stdout.

Modes
    ``startup CONTEXT_FILE``: one ``completion()`` over the file's text (FINAL on turn 1). The
        parent times the whole process (spawn → exit).
    ``turns CONTEXT_FILE``: a run of as many turns as the script has steps; prints the time of
        each turn in seconds: between consecutive starts of ``RLM._completion_turn`` (0.1.3 never
        calls its ``on_iteration_start`` callback); N turns give N - 1 figures (the last turn's end is
        the run's tear-down, which includes ``socketserver``'s 0.5 s shutdown poll).
    ``fanout --concurrency C``: one REPL block ``llm_query_batched`` of N prompts (the script
        says N) and prints the block's own wall time in seconds. rlms bounds a batch by
        ``LMHandler.batch_max_concurrent`` (an ``asyncio.Semaphore``, 16 by default, not an
        ``RLM`` argument), so this mode sets it through a subclass of ``LMHandler``.
    ``rss CONTEXT_FILE``: a 2-turn run over the file's text (read here, as a user would); the
        parent samples the process's peak RSS.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from typing import Any


def _rlm(args: argparse.Namespace, starts: list[float] | None = None) -> Any:
    import rlm

    cls = rlm.RLM
    if starts is not None:

        class Timed(rlm.RLM):  # type: ignore[misc]
            def _completion_turn(self, *a: Any, **kw: Any) -> Any:
                starts.append(time.perf_counter())
                return super()._completion_turn(*a, **kw)

        cls = Timed
    kw = {"model_name": args.model, "base_url": args.base_url, "api_key": "mock", "max_retries": 0}
    sub = dict(kw, model_name="sub")
    return cls(
        backend="openai",
        backend_kwargs=kw,
        other_backends=["openai"],
        other_backend_kwargs=[sub],
        environment="local",
        max_iterations=args.max_iterations,
    )


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["startup", "turns", "fanout", "rss"])
    ap.add_argument("context_file", nargs="?", help="the context text (startup, turns, rss)")
    ap.add_argument("--base-url", required=True, help="http://127.0.0.1:PORT/v1 of the mock server")
    ap.add_argument("--model", default="rlms-root", help="the root model's name in the server's script")
    ap.add_argument("--max-iterations", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16, help="fanout: LMHandler.batch_max_concurrent")
    args = ap.parse_args(argv)
    context = _read(args.context_file) if args.context_file else "fan-out benchmark context"
    out: dict[str, Any] = {"mode": args.mode}
    if args.mode == "turns":
        starts: list[float] = []
        res = _rlm(args, starts).completion(context, root_prompt="per-turn benchmark")
        out["turn_s"] = [b - a for a, b in itertools.pairwise(starts)]
    elif args.mode == "fanout":
        import rlm.core.lm_handler as lm_handler
        import rlm.core.rlm as core

        class BoundedHandler(lm_handler.LMHandler):
            def __init__(self, *a: Any, **kw: Any) -> None:
                kw["batch_max_concurrent"] = args.concurrency
                super().__init__(*a, **kw)

        core.LMHandler = BoundedHandler  # type: ignore[misc]
        res = _rlm(args).completion(context, root_prompt="fan-out")
        out["concurrency"] = args.concurrency
    else:
        res = _rlm(args).completion(context, root_prompt=f"{args.mode} benchmark")
    out["answer"] = res.response
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
