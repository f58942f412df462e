"""Process plumbing for ``benchmarks/scale_out.py``: launching and stopping whole processes
(each in its own process group), CPU accounting per process from ``/proc``, and the mock
LM server with a per-turn root script (run as its own process: ``python
benchmarks/_cluster_procs.py mock --port P --latency-ms 100``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

RLMX = [sys.executable, "-m", "rlmx.cli"]
_CLK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Procs:
    """Processes started by the benchmark, each the leader of its own process group, so a
    stop reaches its children too (REPL fork servers, uvicorn). Logs go to ``folder``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.folder / f"{name}.log").open("ab") as log:
            p = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.procs[name] = p
        return p

    def log_tail(self, name: str, n: int = 2000) -> str:
        try:
            return (self.folder / f"{name}.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, names: list[str] | None = None) -> None:
        """SIGINT each group (a polite stop: workers give their jobs back), SIGKILL what is
        left after 20 s."""
        names = list(self.procs) if names is None else names
        for n in names:
            p = self.procs.get(n)
            if p is not None and p.poll() is None:
                _signal_group(p.pid, signal.SIGINT)
        deadline = time.monotonic() + 20
        for n in names:
            p = self.procs.pop(n, None)
            if p is None:
                continue
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(p.pid, signal.SIGKILL)  # stragglers of the group (REPLs), or the leader
            if p.poll() is None:
                p.wait(10)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def wait_ready(url: str, proc: subprocess.Popen[bytes], what: str, limit_s: float = 90) -> None:
    deadline = time.monotonic() + limit_s
    async with httpx.AsyncClient(timeout=5) as c:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with status {proc.returncode}")
            try:
                if (await c.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} within {limit_s} s")


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def table(rows: list[dict[str, Any]]) -> str:
    head = "| configuration | executions/s | p50 | p99 | completed | lost | 5xx | host CPU busy (cores) | LM calls/s |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['backend']} + {r['workers']} worker{'s' if r['workers'] > 1 else ''} "
            f"× C={r['concurrency_per_worker']} "
            f"({r['api_servers']} API server{'s' if r['api_servers'] > 1 else ''}) | **{r['executions_per_s']}** | "
            f"{r['p50_s']} s | {r['p99_s']} s | {r['completed']}/{r['executions']} | {r['lost']} | {r['5xx']} | "
            f"{r['host_cpu_busy_cores']} | {r['lm_calls_per_s']} |"
        )
    return "\n".join(lines)


# --- CPU accounting -----------------------------------------------------------------------------


def system_cpu() -> tuple[float, float]:
    """(busy, total) seconds of all CPUs since boot, from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + f[4]
    return (sum(f[:8]) - idle) / _CLK, sum(f[:8]) / _CLK


def cpu_by_role(roles: dict[int, str], extra: dict[int, str], parents: dict[int, str]) -> dict[str, float]:
    """CPU seconds (user + system, reaped children included) of the live processes this
    benchmark started, summed by role: ``roles`` maps a process group to a role, ``extra`` a
    pid, ``parents`` a pid whose direct children count too (the postmaster: its backends
    are sessions of their own). Other processes are left out (see :func:`system_cpu`)."""
    out: dict[str, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2 :].split()
        pid, ppid, pgid = int(d.name), int(f[1]), int(f[2])
        role = extra.get(pid) or roles.get(pgid) or parents.get(pid) or parents.get(ppid)
        if role:
            out[role] = out.get(role, 0.0) + sum(int(x) for x in f[11:15]) / _CLK  # utime stime cutime cstime
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after.get(k, 0.0) - before.get(k, 0.0), 2) for k in sorted({*before, *after})}


# --- the mock LM server -------------------------------------------------------------------------

ROOT_TURNS = [
    "print(len(context))",
    'hits = context.grep(r"Marshall [Pp]lan")\nprint(len(hits), sorted({h.doc_name for h in hits}))',
    "doc = context[0]\nprint(doc.name, len(doc), doc[:80])",
    'r = llm_query("{tag}: summarise in one line: " + context[0][:300])\nprint(r[:60])',
    'hits = context.grep(r"inflation")\nprint(len(hits))',
    'rs = llm_query_batched(["{tag}: first", "{tag}: second"])\nprint(rs)',
    "print(sum(len(d) for d in context))",
    'FINAL("{tag}: done")',
]
"""The root LM's 8 turns: 7 steps of real REPL work (3 sub-calls), then FINAL."""
SUB_CALLS = 3
_TAG = re.compile(r"#([A-Za-z0-9_-]+)")


def script(model: str, messages: list[dict[str, Any]]) -> str:
    """``root``: the block of turn n = (assistant messages so far) + 1, tagged with the
    execution's tag from the question (so no two executions share an LLM-cache key);
    ``sub``: a short reply; ``ceiling``: ``ok``."""
    if model != "root":
        return "ok" if model == "ceiling" else "a one-line summary"
    text = " ".join(str(m.get("content")) for m in messages if m.get("role") == "user")
    m = _TAG.search(text)
    tag = m.group(1) if m else "untagged"
    turn = sum(1 for m in messages if m.get("role") == "assistant")
    code = ROOT_TURNS[min(turn, len(ROOT_TURNS) - 1)].replace("{tag}", tag)
    return f"Turn {turn + 1}.\n```repl\n{code}\n```"


def run_mock(port: int, latency_ms: float) -> None:
    from rlmx.dev.mock_llm import MockLLMServer

    class Mock(MockLLMServer):
        def handle_get(self, path: str):  # type: ignore[no-untyped-def]
            if path.rstrip("/") == "/stats":
                with self._lock:
                    return 200, {"requests": len(self._requests), "peak_in_flight": self.peak_in_flight}, {}
            return super().handle_get(path)

    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Mock(port=port, latency_ms=latency_ms, scripts=script):
        while True:
            time.sleep(3600)


async def mock_ceiling(base_url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """Requests/s the mock serves to ``concurrency`` clients calling back to back (its
    latency included): the ceiling of the LM server itself on this host."""
    body = {"model": "ceiling", "messages": [{"role": "user", "content": "ping"}]}
    done, errors, lat = 0, 0, []
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as c:

        async def one() -> None:
            nonlocal done, errors
            while time.monotonic() < stop:
                t0 = time.monotonic()
                r = await c.post("/chat/completions", json=body)
                lat.append(time.monotonic() - t0)
                done, errors = done + (r.status_code == 200), errors + (r.status_code != 200)

        t0 = time.monotonic()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        wall = time.monotonic() - t0
    lat.sort()
    return {
        "concurrency": concurrency,
        "requests_per_s": round(done / wall, 1),
        "errors": errors,
        "p50_ms": round(1000 * lat[len(lat) // 2], 1) if lat else None,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["mock"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--latency-ms", type=float, default=100)
    a = ap.parse_args()
    run_mock(a.port, a.latency_ms)
