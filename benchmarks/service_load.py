"""Service under load (issue 10, item 5): 20 concurrent clients against one ``rlmx serve``
for 10 minutes — executions/s, per-route latency (p50/p99), errors, and the memory of the
server and of its REPL children over time, with a plateau verdict.

Usage: ``python benchmarks/service_load.py [--duration-s 600] [--clients 20]
[--latency-ms 50] [--poll-s 0.5] [--sample-s 5] [--out FILE.json] [--tracemalloc DIR]``

Everything is a real process on 127.0.0.1, driven over HTTP (httpx):

* the mock OpenAI-compatible LM of ``benchmarks/_cluster_procs.py`` at ``--latency-ms`` per
  call; its root script answers 8 turns per execution (``len(context)``, two
  ``context.grep``, slices, one ``llm_query``, one ``llm_query_batched`` of 2, ``FINAL``).
* one ``rlmx serve`` as a user runs it: embedded SQLite + local blobs in a fresh
  ``RLMX_HOME``, its in-process worker (``RLMX_WORKER_CONCURRENCY``, default 4), a session on
  ``--corpus`` (default ``../shared/data/state_union``).
* ``--clients`` tasks, each in a loop until ``--duration-s`` has passed: create an answerer
  execution; follow it to its end — even-numbered clients poll ``GET /v1/executions/{id}``
  every ``--poll-s``, odd ones read its server-sent events up to ``final``; fetch the
  result; every 4th iteration also the trace, a span (``/v1/spans/get``) and a
  verification of that span (``/v1/citations/verify``). The execution tag in each question
  is unique, so no LLM-cache hit shortens a run.

Route latency: the client's clock from sending a request to its whole response
(``events``: to the response headers; the stream itself is reported as "events to final").
Executions/s: executions seen COMPLETED inside the window / the window. Errors: responses
>= 500, transport errors, 429s; lost = created but not seen COMPLETED by the end (the
clients finish their running executions after the window, within ``--timeout-s``).

Memory: every ``--sample-s`` the server's RSS and its descendants' (REPL processes and
their fork server: count, RSS sum, PSS sum) from ``/proc`` (``_service_load_rss.py``), with
the plateau rule printed beside its verdict. ``--tracemalloc DIR`` runs the server under
tracemalloc (``_service_load_server.py``; slower: for finding a leak, not for the figures)
and prints what grew between a third of the window and its end.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cluster_procs import RLMX, Procs, cpu_by_role, cpu_delta, free_port, pct, system_cpu, wait_ready
from _service_load_rss import PLATEAU_RULE, Sample, plateau, sample_tree
from _service_load_server import report

from rlmx.service.base import TERMINAL

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "state_union"
MODELS = {"root": "openai:root", "sub": "openai:sub"}
MARKS_MIN = (0, 1, 2, 5, 10)
"""Minutes at which the table shows memory (those inside the window)."""


class Load:
    """The run's processes, its clients' records and the memory samples."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="rlmx-service-load-"))
        (self.tmp / "logs").mkdir()
        self.procs = Procs(self.tmp / "logs")
        self.lat: dict[str, list[float]] = {}
        self.codes: dict[str, dict[str, int]] = {}
        self.errors = {"5xx": 0, "transport": 0, "429": 0, "other_4xx": 0}
        self.runs: list[dict[str, Any]] = []
        self.samples: list[Sample] = []
        self.first_error: str | None = None
        self.t_end = 0.0
        """When the window ends (``time.monotonic()``); SIGINT or SIGTERM brings it to now."""

    # -- processes --------------------------------------------------------------------------
    async def start(self) -> None:
        a = self.args
        port = free_port()
        self.mock_url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, str(Path(__file__).with_name("_cluster_procs.py")), "mock", "--port", str(port)]
        mock = self.procs.spawn("mock-llm", [*argv, "--latency-ms", str(a.latency_ms)], dict(os.environ))
        await wait_ready(self.mock_url + "/stats", mock, "mock LM server")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RLMX_", "OPENAI_"))}
        corpus = str(Path(a.corpus).resolve())
        env |= {
            "PYTHONUNBUFFERED": "1",
            "RLMX_HOME": str(self.tmp / "home"),
            "OPENAI_BASE_URL": self.mock_url + "/v1",
            "OPENAI_API_KEY": "x",
            "RLMX_SERVICE_MODELS": "openai:root,openai:sub",
            "RLMX_ALLOWED_PATHS": corpus,
            "RLMX_RATE_LIMIT_PER_MINUTE": "100000000",
        }
        made = subprocess.run([*RLMX, "keys", "create", "--tenant", "load"], env=env, capture_output=True, text=True)
        if made.returncode != 0:
            raise RuntimeError(f"rlmx keys create failed: {made.stderr[-2000:]}")
        sport = free_port()
        serve = ["serve", "--port", str(sport), "--log-level", "warning"]
        if a.tracemalloc:
            wrapper = str(Path(__file__).with_name("_service_load_server.py"))
            argv = [sys.executable, wrapper, str(Path(a.tracemalloc).resolve()), *serve]
        else:
            argv = [*RLMX, *serve]
        self.server = self.procs.spawn("serve", argv, env)
        await wait_ready(f"http://127.0.0.1:{sport}/health/ready", self.server, "rlmx serve")
        limits = httpx.Limits(max_connections=4 * a.clients, max_keepalive_connections=4 * a.clients)
        headers = {"Authorization": f"Bearer {made.stdout.strip()}"}
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{sport}", headers=headers, timeout=60, limits=limits)
        r = await self.http.post("/v1/sessions", json={"docs": [{"path": corpus}]})
        r.raise_for_status()
        self.sid = r.json()["session_id"]
        deadline = time.monotonic() + 120
        while (s := (await self.http.get(f"/v1/sessions/{self.sid}")).json())["status"] != "READY":
            if s["status"] == "FAILED" or time.monotonic() > deadline:
                raise RuntimeError(f"session {self.sid} is {s['status']}")
            await asyncio.sleep(0.2)
        self.doc_ids = [d["doc_id"] for d in s["documents"] if d.get("doc_id")]

    async def close(self) -> None:
        if hasattr(self, "http"):
            await self.http.aclose()
        self.procs.stop()
        if self.args.keep:
            print(f"kept {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- one request ------------------------------------------------------------------------
    def _count(self, route: str, dt: float, status: int | None, text: str = "") -> None:
        self.lat.setdefault(route, []).append(dt)
        codes = self.codes.setdefault(route, {})
        key = "transport" if status is None else str(status)
        codes[key] = codes.get(key, 0) + 1
        if status is None:
            self.errors["transport"] += 1
        elif status >= 500:
            self.errors["5xx"] += 1
        elif status == 429:
            self.errors["429"] += 1
        elif status >= 400:
            self.errors["other_4xx"] += 1
        if (status is None or status >= 400) and self.first_error is None:
            self.first_error = f"{route}: {status} {text[:300]}"

    async def call(self, route: str, method: str, url: str, **kw: Any) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            r = await self.http.request(method, url, **kw)
        except httpx.TransportError as e:
            self._count(route, time.perf_counter() - t0, None, repr(e))
            return None
        self._count(route, time.perf_counter() - t0, r.status_code, r.text if r.status_code >= 400 else "")
        return r

    async def follow_events(self, eid: str) -> str | None:
        """Read the execution's events up to ``final``: its status (None on an error)."""
        t0 = time.perf_counter()
        try:
            async with self.http.stream("GET", f"/v1/executions/{eid}/events") as r:
                self._count("GET /v1/executions/{id}/events", time.perf_counter() - t0, r.status_code)
                if r.status_code != 200:
                    return None
                kind = None
                async for line in r.aiter_lines():
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:") and kind == "final":
                        self.lat.setdefault("events to final", []).append(time.perf_counter() - t0)
                        return str(json.loads(line[5:])["status"])
        except httpx.TransportError as e:
            self._count("GET /v1/executions/{id}/events", time.perf_counter() - t0, None, repr(e))
        return None

    # -- a client ---------------------------------------------------------------------------
    async def client(self, c: int) -> None:
        a, k = self.args, 0
        while time.monotonic() < self.t_end:
            k += 1
            tag = f"c{c}-{k}"
            run: dict[str, Any] = {"client": c, "tag": tag, "t_submit": time.monotonic(), "status": "NOT_CREATED"}
            self.runs.append(run)
            body = {"question": f"Which addresses mention the Marshall Plan? #{tag}", "models": MODELS}
            r = await self.call(
                "POST /v1/sessions/{id}/executions", "POST", f"/v1/sessions/{self.sid}/executions", json=body
            )
            if r is None or r.status_code != 202:
                await asyncio.sleep(a.poll_s)
                continue
            eid = r.json()["execution_id"]
            run |= {"execution_id": eid, "status": "RUNNING"}
            stop = time.monotonic() + a.timeout_s
            if c % 2:
                await self.follow_events(eid)
            else:
                while time.monotonic() < stop:
                    await asyncio.sleep(a.poll_s)
                    g = await self.call("GET /v1/executions/{id} (poll)", "GET", f"/v1/executions/{eid}")
                    if g is not None and g.status_code == 200 and g.json()["status"] in TERMINAL:
                        break
            g = await self.call("GET /v1/executions/{id} (result)", "GET", f"/v1/executions/{eid}")
            if g is not None and g.status_code == 200:
                run["status"] = g.json()["status"]
            run["t_done"] = time.monotonic()
            if k % 4 == c % 4:
                await self.extras(eid, (c + k) % len(self.doc_ids))

    async def extras(self, eid: str, i: int) -> None:
        """The trace, a span of document ``i`` and that span verified."""
        await self.call("GET /v1/executions/{id}/trace", "GET", f"/v1/executions/{eid}/trace")
        span = {"doc_id": self.doc_ids[i], "start": 100, "end": 400}
        s = await self.call("POST /v1/spans/get", "POST", "/v1/spans/get", json=span)
        if s is not None and s.status_code == 200:
            await self.call(
                "POST /v1/citations/verify", "POST", "/v1/citations/verify", json={"citations": [s.json()["span"]]}
            )

    # -- memory -----------------------------------------------------------------------------
    async def sampler(self, t0: float) -> None:
        a = self.args
        marks = [a.duration_s / 3, a.duration_s] if a.tracemalloc else []
        while True:
            now = time.monotonic()
            s = await asyncio.to_thread(sample_tree, self.server.pid, now - t0)
            if s is not None:
                self.samples.append(s)
            if marks and now - t0 >= marks[0] - a.sample_s / 2:
                marks.pop(0)
                await self.dump_heap()
            if now >= self.t_end:
                return
            await asyncio.sleep(max(0.0, min(a.sample_s - (time.monotonic() - now), self.t_end - time.monotonic())))

    async def dump_heap(self) -> None:
        folder = Path(self.args.tracemalloc).resolve()
        n = len(list(folder.glob("done-*"))) + 1
        os.kill(self.server.pid, signal.SIGUSR1)
        while not (folder / f"done-{n}").exists():
            await asyncio.sleep(0.2)

    async def run(self) -> dict[str, Any]:
        a = self.args
        t0 = time.monotonic()
        self.t_end = t0 + a.duration_s
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # a polite stop: the window ends now
            loop.add_signal_handler(sig, lambda: setattr(self, "t_end", min(self.t_end, time.monotonic())))
        sampler = asyncio.create_task(self.sampler(t0))
        cpu0, w0 = self.cpu(), time.monotonic()
        await asyncio.gather(*(self.client(c) for c in range(a.clients)))
        await sampler
        self.cpu_s = self.cpu(cpu0)
        self.cpu_wall_s = round(time.monotonic() - w0, 1)  # the window + the clients' last executions
        return self.summary(t0, self.t_end)

    def cpu(self, before: dict[str, float] | None = None) -> dict[str, float]:
        """CPU seconds so far by role (``serve``: the server and its REPLs, one process group;
        ``mock-llm``; ``driver``: this script; ``host busy``: all CPUs); with ``before``, since then."""
        roles = {p.pid: n for n, p in self.procs.procs.items()}
        now = cpu_by_role(roles, {os.getpid(): "driver"}, {}) | {"host busy": system_cpu()[0]}
        return now if before is None else cpu_delta(before, now)

    # -- figures ----------------------------------------------------------------------------
    def summary(self, t0: float, t_end: float) -> dict[str, Any]:
        a = self.args
        done = [r for r in self.runs if r["status"] == "COMPLETED"]
        inside = [r for r in done if r["t_done"] <= t_end]
        lat = [r["t_done"] - r["t_submit"] for r in done]
        window = t_end - t0
        per_min = [0] * max(1, int(window // 60))
        for r in inside:
            per_min[min(len(per_min) - 1, int((r["t_done"] - t0) // 60))] += 1
        ms = lambda xs, q: round(1000 * (pct(xs, q) or 0), 1)  # noqa: E731
        routes = {
            k: {"n": len(v), "p50_ms": ms(v, 0.5), "p99_ms": ms(v, 0.99), "max_ms": round(1000 * max(v), 1),
                "codes": self.codes.get(k, {})}
            for k, v in sorted(self.lat.items())
        }  # fmt: skip
        ts = [s.t_s for s in self.samples]
        at = {}
        for m in MARKS_MIN:
            if m * 60 <= window + a.sample_s and self.samples:
                near = min(self.samples, key=lambda s: abs(s.t_s - 60 * m))
                at[f"{m} min"] = near.row()
        out = {
            "args": vars(a),
            "executions": len([r for r in self.runs if r["status"] != "NOT_CREATED"]),
            "completed": len(done),
            "completed_in_window": len(inside),
            "lost": len([r for r in self.runs if r["status"] not in ("COMPLETED", "NOT_CREATED")]),
            "not_created": len([r for r in self.runs if r["status"] == "NOT_CREATED"]),
            "window_s": round(window, 1),
            "executions_per_s": round(len(inside) / window, 3),
            "executions_per_s_by_minute": [  # the last bucket takes the window's remainder
                round(n / (60 if i < len(per_min) - 1 else window - 60 * i), 3) for i, n in enumerate(per_min)
            ],
            "execution_latency_s": {"p50": round(pct(lat, 0.5) or 0, 3), "p99": round(pct(lat, 0.99) or 0, 3),
                                    "mean": round(statistics.fmean(lat), 3) if lat else None},
            "cpu_s": self.cpu_s, "cpu_wall_s": self.cpu_wall_s, "cpus": os.cpu_count(),
            "errors": self.errors, "first_error": self.first_error, "routes": routes,
            "memory_at": at, "plateau_rule": PLATEAU_RULE,
            "plateau_server_rss": plateau(ts, [s.server_rss_mib for s in self.samples]),
            "plateau_children_pss": plateau(ts, [s.children_pss_mib for s in self.samples]),
            "samples": [s.row() for s in self.samples],
        }  # fmt: skip
        if a.tracemalloc:
            out["tracemalloc"] = report(Path(a.tracemalloc).resolve(), 1, 2)
        return out


def tables(res: dict[str, Any]) -> str:
    lines = [
        f"executions/s **{res['executions_per_s']}** ({res['completed_in_window']} completed in "
        f"{res['window_s']:.0f} s; per minute {res['executions_per_s_by_minute']}); execution latency "
        f"p50 {res['execution_latency_s']['p50']} s, p99 {res['execution_latency_s']['p99']} s; lost {res['lost']}; "
        f"errors {res['errors']}",
        f"CPU seconds by role over {res['cpu_wall_s']} s (the window and the clients' last executions): "
        f"{res['cpu_s']} (the host's {res['cpus']} CPUs offer {round(res['cpus'] * res['cpu_wall_s'])} s)",
        "",
        "| route | requests | p50 | p99 | max | status codes |",
        "|---|---|---|---|---|---|",
    ]
    for k, r in res["routes"].items():
        lines.append(f"| `{k}` | {r['n']} | {r['p50_ms']} ms | {r['p99_ms']} ms | {r['max_ms']} ms | {r['codes']} |")
    lines += [
        "",
        "| at | server RSS | of it anon / file | threads / fds | REPL children | children RSS (sum) "
        "| children PSS (sum) |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, s in res["memory_at"].items():
        lines.append(
            f"| {k} | {s['server_rss_mib']} MiB | {s['server_anon_mib']} / {s['server_file_mib']} MiB | "
            f"{s['server_threads']} / {s['server_fds']} | {s['children']} | {s['children_rss_mib']} MiB | "
            f"{s['children_pss_mib']} MiB |"
        )
    lines += ["", res["plateau_rule"] + ":"]
    for k in ("plateau_server_rss", "plateau_children_pss"):
        lines.append(f"- {k}: {json.dumps(res[k])}")
    return "\n".join(lines)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    load = Load(args)
    try:
        await load.start()
        return await load.run()
    except BaseException:
        print(f"--- rlmx serve log tail:\n{load.procs.log_tail('serve')}", file=sys.stderr)
        raise
    finally:
        await load.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration-s", type=float, default=600, help="seconds of load (the measured window)")
    ap.add_argument("--corpus", default=str(CORPUS), help="the session's folder (default ../shared/data/state_union)")
    ap.add_argument("--clients", type=int, default=20, help="concurrent clients")
    ap.add_argument("--latency-ms", type=float, default=50, help="the mock LM's latency per call")
    ap.add_argument("--poll-s", type=float, default=0.5, help="interval of a polling client's status reads")
    ap.add_argument("--sample-s", type=float, default=5, help="interval of the memory samples")
    ap.add_argument("--timeout-s", type=float, default=300, help="an execution not terminal by then is lost")
    ap.add_argument("--tracemalloc", metavar="DIR", help="run the server under tracemalloc, heap dumps in DIR")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, RLMX_HOME)")
    ap.add_argument("--out", help="write the JSON result here, and the samples as CSV beside it")
    args = ap.parse_args()
    res = asyncio.run(amain(args))
    if args.out:  # first: a closed stdout must not lose the figures
        out = Path(args.out)
        out.write_text(json.dumps(res, indent=1) + "\n")
        with out.with_suffix(".samples.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(res["samples"][0]) if res["samples"] else ["t_s"])
            w.writeheader()
            w.writerows(res["samples"])
    print(tables(res))
    if "tracemalloc" in res:
        print("\ntracemalloc, a third of the window -> its end:\n" + json.dumps(res["tracemalloc"], indent=1))


if __name__ == "__main__":
    main()
