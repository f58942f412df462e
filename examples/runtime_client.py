"""A runtime-mode client that knows nothing but rlmx's HTTP API and an OpenAI-compatible LM.

The client's LM plays the root LM: it gets the system prompt and first message the service
hands out (the same text answerer mode sends), writes one ```repl block per turn, and reads
back each step's ``observation`` (truncated as answerer mode's root LM would see it). When
the turns run out, the last observation ends with the closing request and one closing step
gives the answer. Sub-calls inside the steps are resolved by the server's own models.

    export RLMX_KEY=...  OPENAI_API_KEY=...   # OPENAI_BASE_URL for another compatible server
    python examples/runtime_client.py --server http://127.0.0.1:8000 --model gpt-5-mini \\
        --docs /usr/share/doc/sqlite3-doc "Which pragma sets the page size of a database?"

Prints the answer, then one line per citation (``doc_name [start:end] text``), and exits
0 when the execution COMPLETED, 1 when it ended otherwise, 2 on bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import httpx2 as httpx
from openai import OpenAI

__all__ = ["main", "run"]


def _wait_ready(c: httpx.Client, sid: str, headers: dict[str, str], limit_s: float = 600.0) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        s = c.get(f"/v1/sessions/{sid}", headers=headers).raise_for_status().json()
        if s["status"] == "READY":
            return
        if s["status"] == "FAILED" or time.monotonic() > deadline:
            raise SystemExit(f"runtime_client: the session did not become READY: {s.get('error') or s['status']}")
        time.sleep(0.5)  # polling a remote server: nothing to wait on but time


def run(server: str, key: str, docs: list[str], question: str, model: str, max_turns: int) -> dict[str, Any]:
    """Answer ``question`` over the server-side folders ``docs`` by driving a runtime
    execution with the OpenAI-compatible ``model``; returns the last step answer (with
    ``status``, ``answer`` and ``citations``). Raises ``httpx.HTTPStatusError`` on a
    refused request."""
    headers = {"Authorization": f"Bearer {key}"}
    lm = OpenAI()
    with httpx.Client(base_url=server, timeout=300) as c:
        sid = c.post("/v1/sessions", json={"docs": [{"path": d} for d in docs]}, headers=headers)
        sid = sid.raise_for_status().json()["session_id"]
        _wait_ready(c, sid, headers)
        body = {"question": question, "budgets": {"max_turns": max_turns}}
        rt = c.post(f"/v1/sessions/{sid}/executions/runtime", json=body, headers=headers).raise_for_status().json()
        steps = f"/v1/executions/{rt['execution_id']}/steps"
        messages: list[Any] = [
            {"role": "system", "content": rt["prompt"]},
            {"role": "user", "content": rt["first_message"]},
        ]
        while True:
            reply = lm.chat.completions.create(model=model, messages=messages).choices[0].message.content or ""
            step = c.post(steps, json={"code": reply}, headers=headers).raise_for_status().json()
            if step["status"] != "RUNNING":
                return dict(step)
            messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": step["observation"]}]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("question")
    p.add_argument("--server", default=os.environ.get("RLMX_SERVER", "http://127.0.0.1:8000"))
    p.add_argument("--docs", action="append", required=True, help="a folder or file on the server (repeatable)")
    p.add_argument("--model", default=os.environ.get("RLMX_CLIENT_MODEL", "gpt-5-mini"))
    p.add_argument("--max-turns", type=int, default=12)
    a = p.parse_args(argv)
    key = os.environ.get("RLMX_KEY")
    if not key:
        print("runtime_client: set RLMX_KEY to a key from `rlmx keys create --tenant NAME`", file=sys.stderr)
        return 2
    try:
        end = run(a.server, key, a.docs, a.question, a.model, a.max_turns)
    except httpx.HTTPStatusError as e:
        print(f"runtime_client: {e.request.method} {e.request.url.path}: {e.response.text}", file=sys.stderr)
        return 2
    print(end.get("answer") or f"(no answer: {end.get('error')})")
    for cit in end.get("citations") or []:
        print(f"  {cit['doc_name']} [{cit['start']}:{cit['end']}] {cit['text'][:120]!r}")
    return 0 if end["status"] == "COMPLETED" else 1


if __name__ == "__main__":
    sys.exit(main())
