"""Sub-call fan-out: N ``llm_query_batched`` prompts against the mock LLM server.

Usage: ``.venv/bin/python benchmarks/fanout.py [--prompts 1000] [--latency-ms 100]
[--concurrency 64] [--in-process | --no-http | --bare-sdk | --server-ceiling] [--no-cache]
[--repeat 3] [--json]``.

A scripted root LM writes one REPL step, ``r = llm_query_batched([...N prompts...])``; the
sub-LM is ``openai:mock`` (rlmx's OpenAI client, HTTP over ``aiohttp``) against ``rlmx dev
mock-llm --quiet`` (uvicorn + Starlette in a separate process, so the server does not share
this process's GIL; with ``--in-process`` it runs on a thread here; with ``--no-http`` the
sub-LM is an in-process client that sleeps ``latency`` and makes no request, which isolates
rlmx's own overhead from the HTTP client's). Floors without rlmx, against the same server
process: ``--bare-sdk`` (the ``openai`` SDK alone) and ``--server-ceiling`` (a bare
``aiohttp`` session: what the server and the host allow any Python client); both also print
the client's CPU time per request (``time.process_time`` of this process over the timed
window). The whole stack
is on: budgets, LLM cache (misses: every prompt differs, and a fresh store is used),
retries, the concurrency limit, the trace (a row per sub-call, batched). Prints the step's
wall time (REPL → orchestrator → N HTTP calls → REPL), the ideal ``ceil(N / C) × latency``
and their ratio (issue 10's targets: ≤ 1.2 at C = 64, ≤ 1.05 at C = 16).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from rlmx import RLM
from rlmx.lm import ScriptedLM
from rlmx.lm.base import Completion, LMClient, Message, estimate_tokens


class SleepLM(LMClient):
    """A sub-LM that answers after ``latency_s`` seconds without any I/O (``--no-http``)."""

    provider = "scripted"
    model = "sleep"

    def __init__(self, latency_s: float):
        self.latency_s = latency_s

    async def complete(
        self, messages: list[Message], *, max_tokens: int | None = None, temperature: float | None = None
    ) -> Completion:
        await asyncio.sleep(self.latency_s)
        text = messages[-1]["content"]
        return Completion(text, estimate_tokens(text), estimate_tokens(text), self.provider, self.model)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mock_server(latency_ms: float, in_process: bool) -> Iterator[str]:
    """Yield the base URL of a running mock server (subprocess or thread)."""
    if in_process:
        from rlmx.dev.mock_llm import MockLLMServer

        with MockLLMServer(latency_ms=latency_ms) as srv:
            yield srv.base_url
        return
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "rlmx.cli",
        "dev",
        "mock-llm",
        "--quiet",
        "--port",
        str(port),
        "--latency-ms",
        str(latency_ms),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/models", timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("the mock server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_bare(
    prompts: int = 1000, latency_ms: float = 100, concurrency: int = 64, client: str = "sdk"
) -> dict[str, Any]:
    """The floor without rlmx: ``prompts`` calls, ``concurrency`` at a time, against the mock
    server process, by a bare client: ``"sdk"`` (the ``openai`` SDK, what most Python
    clients of such a server use) or ``"aiohttp"`` (one ``aiohttp`` session: the cheapest
    Python client, so its ratio is the ceiling of the server and the host)."""

    async def go(url: str) -> tuple[float, float]:
        sem = asyncio.Semaphore(concurrency)
        if client == "sdk":
            import openai

            sdk = openai.AsyncOpenAI(base_url=url, api_key="mock", max_retries=0)

            async def call(i: int) -> None:
                await sdk.chat.completions.create(model="mock", messages=[{"role": "user", "content": f"p{i}"}])

            close = sdk.close
        else:
            import aiohttp

            session = aiohttp.ClientSession()

            async def call(i: int) -> None:
                body = {"model": "mock", "messages": [{"role": "user", "content": f"p{i}"}]}
                async with session.post(url + "/chat/completions", json=body) as resp:
                    await resp.read()

            close = session.close

        async def one(i: int) -> None:
            async with sem:
                await call(i)

        await one(-1)  # warm up: imports, first connection
        t0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(i) for i in range(prompts)))
        took, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        await close()
        return took, cpu

    with mock_server(latency_ms, False) as url:  # the server is another process: cpu is the client's
        took, cpu = asyncio.run(go(url))
    ideal = math.ceil(prompts / concurrency) * latency_ms / 1000
    label = "openai SDK alone" if client == "sdk" else "bare aiohttp session (server ceiling)"
    return {
        "sub_lm": f"{label}, no rlmx (mock server process)",
        "cache": False,
        "prompts": prompts,
        "concurrency": concurrency,
        "latency_ms": latency_ms,
        "sub_calls": prompts,
        "step_s": round(took, 3),
        "ideal_s": round(ideal, 3),
        "ratio": round(took / ideal, 3) if ideal else None,
        "execution_s": round(took, 3),
        "requests_per_s": round(prompts / took, 1),
        "client_cpu_ms_per_request": round(1000 * cpu / prompts, 3),
    }


def run(
    prompts: int = 1000,
    latency_ms: float = 100,
    concurrency: int = 64,
    in_process: bool = False,
    http: bool = True,
    cache: bool = True,
) -> dict[str, Any]:
    """Run the benchmark; returns its figures (seconds, ratio)."""
    events: list[tuple[str, dict[str, Any]]] = []

    def script(messages: list[dict[str, str]]) -> str:
        if sum(m["role"] == "assistant" for m in messages) == 0:
            return f"```repl\nr = llm_query_batched([f'prompt {{i}}' for i in range({prompts})])\nprint(len(r))\n```"
        return "```repl\nFINAL(str(len(r)))\n```"

    server = mock_server(latency_ms, in_process) if http else nullcontext("")
    with server as url, tempfile.TemporaryDirectory() as home:
        saved = {k: os.environ.get(k) for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
        os.environ.update(OPENAI_BASE_URL=url, OPENAI_API_KEY="mock")
        try:
            from rlmx.lm.registry import make_client

            sub = make_client("openai:mock", role="sub") if http else SleepLM(latency_ms / 1000)
            rlm = RLM(
                model=ScriptedLM(script),
                sub_model=sub,
                budgets={"max_turns": 3},
                home=home,
                cache=cache,
                max_concurrency=concurrency,
                on_event=lambda kind, data: events.append((kind, data)),
            )
            corpus = rlm.texts("fan-out benchmark context")

            async def ask() -> Any:
                try:
                    return await rlm.aask(corpus, "fan-out")
                finally:
                    await sub.aclose()  # close the HTTP pool while its event loop runs

            t0 = time.perf_counter()
            answer = asyncio.run(ask())
            wall = time.perf_counter() - t0
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    if answer.text != str(prompts):
        raise SystemExit(f"unexpected answer {answer.text!r} ({answer.status}, {answer.error})")
    step = next(d["step_s"] for k, d in events if k == "turn_finished" and d["turn"] == 1)
    ideal = math.ceil(prompts / concurrency) * latency_ms / 1000
    return {
        "sub_lm": ("mock server on a thread" if in_process else "mock server process") if http else "in-process sleep",
        "cache": cache,
        "prompts": prompts,
        "concurrency": concurrency,
        "latency_ms": latency_ms,
        "sub_calls": answer.usage.sub_calls,
        "step_s": round(step, 3),
        "ideal_s": round(ideal, 3),
        "ratio": round(step / ideal, 3) if ideal else None,
        "execution_s": round(wall, 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=1000)
    ap.add_argument("--latency-ms", type=float, default=100)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--in-process", action="store_true", help="run the mock server on a thread of this process")
    ap.add_argument("--no-http", action="store_true", help="sub-LM sleeps in process: rlmx's overhead alone")
    ap.add_argument("--no-cache", action="store_true", help="bypass the LLM cache")
    ap.add_argument("--bare-sdk", action="store_true", help="the openai SDK alone, without rlmx")
    ap.add_argument(
        "--server-ceiling", action="store_true", help="a bare aiohttp session, without rlmx: the server's ceiling"
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs; the median is reported")
    ap.add_argument("--json", action="store_true", help="print the figures of every run as JSON")
    a = ap.parse_args(argv)
    runs = [
        run_bare(a.prompts, a.latency_ms, a.concurrency, "sdk" if a.bare_sdk else "aiohttp")
        if a.bare_sdk or a.server_ceiling
        else run(a.prompts, a.latency_ms, a.concurrency, a.in_process, not a.no_http, not a.no_cache)
        for _ in range(max(1, a.repeat))
    ]
    if a.json:
        print(json.dumps(runs))
        return 0
    r = sorted(runs, key=lambda x: x["step_s"])[len(runs) // 2]
    cache = "on" if r["cache"] else "off"
    print(f"prompts {r['prompts']}, concurrency {r['concurrency']}, latency {r['latency_ms']:g} ms ({r['sub_lm']})")
    print(f"LLM cache {cache}; {len(runs)} run(s), median shown")
    print(f"step wall time:   {r['step_s']:.3f} s ({r['sub_calls']} sub-calls)")
    print(f"ideal:            {r['ideal_s']:.3f} s (ceil({r['prompts']}/{r['concurrency']}) x latency)")
    ratio = "n/a (no latency)" if r["ratio"] is None else f"{r['ratio']:.3f}"
    print(f"ratio:            {ratio}; all runs: {', '.join(str(x['ratio']) for x in runs)}")
    print(f"whole execution:  {r['execution_s']:.3f} s")
    if "client_cpu_ms_per_request" in r:
        cpu = r["client_cpu_ms_per_request"]
        print(f"client CPU:       {cpu:.3f} ms a request (this process; the server is another)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
