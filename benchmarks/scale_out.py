"""Scale-out benchmark (issue 8): executions/s and end-to-end latency with 1, 2 and 4
``rlmx worker`` processes on PostgreSQL + S3 (moto) vs the embedded SQLite mode, and the
latency of runtime steps that move between API servers (snapshot restore).

Usage: ``python benchmarks/scale_out.py [--executions 48] [--concurrency 4] [--workers 1,2,4]
[--backends pg,sqlite] [--runtime-steps 40] [--out FILE]``

Everything is a real process on 127.0.0.1, driven over HTTP (httpx):

* a mock OpenAI-compatible LM server (``_cluster_procs.py mock``, stdlib threaded HTTP) at
  ``--latency-ms`` per call; its root script answers 8 turns per execution (7 ```repl blocks:
  ``len(context)``, two ``context.grep``, slices, one ``llm_query``, one
  ``llm_query_batched`` of 2, then ``FINAL``): 8 root calls + 3 sub-calls each. Its own
  ceiling (requests/s at 16 and 64 concurrent callers) is measured first, in the same run.
* ``pg``: one PostgreSQL (rlmx.dev.postgres, fsync off) and one moto S3 server for the run,
  a fresh database + bucket per configuration; 2 ``rlmx serve --no-worker`` (submissions
  and polls round-robin) and N ``rlmx worker --concurrency C``; each process its own
  RLMX_HOME. ``sqlite``: one RLMX_HOME (SQLite + local blobs), one ``rlmx serve
  --no-worker`` and N ``rlmx worker`` on it.

Per configuration: a session on ``../shared/data/state_union``, a warm-up of N x C
executions, then ``--executions`` submitted at once. Latency = the server's ``finished_at``
- the client's clock before the POST (one host, one clock); executions/s = K / (last
``finished_at`` - first submit). Clients poll ``GET /v1/executions/{id}`` every
``--poll-s``. Lost = not COMPLETED (or not seen terminal within ``--timeout-s``); 5xx =
responses >= 500 of any request. CPU seconds per process role come from /proc over the
measured window (``other`` = processes this script did not start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cluster_procs import (
    RLMX,
    SUB_CALLS,
    Procs,
    cpu_by_role,
    cpu_delta,
    free_port,
    mock_ceiling,
    pct,
    system_cpu,
    table,
    wait_ready,
)

from rlmx.dev.postgres import LocalPostgres
from rlmx.dev.s3server import LocalS3
from rlmx.service.base import TERMINAL

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "state_union"
MODELS = {"root": "openai:root", "sub": "openai:sub"}


class Cluster:
    """One configuration's processes: API servers and workers on one store."""

    def __init__(self, run: Run, name: str, backend: str, workers: int, api_servers: int):
        self.run, self.name, self.backend = run, name, backend
        self.n_workers, self.n_api = workers, api_servers
        self.folder = run.tmp / name
        self.folder.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RLMX_", "OPENAI_", "AWS_"))}
        env |= {
            "PYTHONUNBUFFERED": "1",
            "OPENAI_BASE_URL": run.mock_url + "/v1",
            "OPENAI_API_KEY": "x",
            "RLMX_SERVICE_MODELS": "openai:root,openai:sub",
            "RLMX_ALLOWED_PATHS": str(CORPUS),
            "RLMX_RATE_LIMIT_PER_MINUTE": "100000000",
        }
        if backend == "pg":
            assert run.pg is not None and run.s3 is not None
            db = name.replace("-", "_")
            run.s3.create_bucket(name)
            env |= {"RLMX_DATABASE_URL": run.pg.create_database(db), "RLMX_BLOB_URL": f"s3://{name}/rlmx"}
            env |= run.s3.env()
        self.env = env
        self.ports = [free_port() for _ in range(api_servers)]
        self.names: list[str] = []

    def _env(self, proc: str) -> dict[str, str]:
        home = self.folder / ("home" if self.backend == "sqlite" else proc)
        return {**self.env, "RLMX_HOME": str(home)}

    async def start(self) -> None:
        made = subprocess.run(
            [*RLMX, "keys", "create", "--tenant", "bench"], env=self._env("api1"), capture_output=True, text=True
        )
        if made.returncode != 0:
            raise RuntimeError(f"rlmx keys create failed: {made.stderr[-2000:]}")
        self.headers = {"Authorization": f"Bearer {made.stdout.strip()}"}
        procs = self.run.procs
        for i, port in enumerate(self.ports, 1):
            n = f"{self.name}-api{i}"
            procs.spawn(
                n, [*RLMX, "serve", "--no-worker", "--port", str(port), "--log-level", "warning"], self._env(f"api{i}")
            )
            self.names.append(n)
        for n, port in zip(self.names, self.ports, strict=True):
            await wait_ready(f"http://127.0.0.1:{port}/health/ready", procs.procs[n], n)
        workers = [f"{self.name}-worker{i}" for i in range(1, self.n_workers + 1)]
        for i, n in enumerate(workers, 1):
            procs.spawn(n, [*RLMX, "worker", "--concurrency", str(self.run.args.concurrency)], self._env(f"worker{i}"))
            self.names.append(n)
        deadline = time.monotonic() + 90
        while not all("rlmx worker" in procs.log_tail(n) for n in workers):  # its start line: Service is up
            if time.monotonic() > deadline or any(procs.procs[n].poll() is not None for n in workers):
                raise RuntimeError("a worker did not start")
            await asyncio.sleep(0.1)
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        self.clients = [
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{p}", headers=self.headers, timeout=60, limits=limits)
            for p in self.ports
        ]
        c = self.clients[0]
        r = await c.post("/v1/sessions", json={"docs": [{"path": str(CORPUS)}]})
        r.raise_for_status()
        self.sid = r.json()["session_id"]
        deadline = time.monotonic() + 120
        while (s := (await c.get(f"/v1/sessions/{self.sid}")).json()["status"]) != "READY":
            if s == "FAILED" or time.monotonic() > deadline:
                raise RuntimeError(f"session {self.sid} is {s}")
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        for c in getattr(self, "clients", []):
            await c.aclose()
        self.run.procs.stop(self.names)

    def roles(self) -> dict[int, str]:
        procs = self.run.procs.procs
        return {procs[n].pid: n.removeprefix(self.name + "-") for n in self.names} | {self.run.mock_pid: "mock-llm"}

    def cpu(self) -> tuple[dict[str, float], tuple[float, float]]:
        s3 = self.run.s3.process if self.run.s3 is not None else None
        extra = {os.getpid(): "driver"} | ({s3.pid: "s3 (moto)"} if s3 is not None else {})
        parents = {}
        if self.run.pg is not None and self.run.pg.folder is not None:
            pid_file = self.run.pg.folder / "data" / "postmaster.pid"
            parents[int(pid_file.read_text().split()[0])] = "postgres"
        return cpu_by_role(self.roles(), extra, parents), system_cpu()

    async def profile(self, runs: list[dict[str, Any]], n: int = 8) -> dict[str, Any]:
        """Where the time of ``n`` completed executions went, from their traces: per turn,
        the root-LM call and the REPL step as the worker timed them; queued = latency - the
        turns' total."""
        root, step, total, queued = [], [], [], []
        for r in [r for r in runs if r["status"] == "COMPLETED"][:n]:
            t = (await self.clients[0].get(f"/v1/executions/{r['execution_id']}/trace")).json()
            tm = [x["timings"] for x in t["turns"] if x.get("timings")]
            root += [x["root_s"] for x in tm]
            step += [x["step_s"] for x in tm]
            total.append(sum(x["total_s"] for x in tm))
            queued.append(r["t_finished"] - r["t_submit"] - total[-1])
        ms = lambda xs: round(1000 * statistics.median(xs), 1) if xs else None  # noqa: E731
        return {
            "root_call_ms_median": ms(root), "step_ms_median": ms(step),
            "turns_total_s_median": round(statistics.median(total), 3) if total else None,
            "outside_turns_s_median": round(statistics.median(queued), 3) if queued else None,
        }  # fmt: skip

    async def execution(self, i: int, tag: str, stats: dict[str, int]) -> dict[str, Any]:
        """Submit one answerer execution and poll it to a terminal status."""
        a = self.run.args
        body = {"question": f"Which addresses mention the Marshall Plan? #{tag}", "models": MODELS}
        t_submit = time.time()
        out: dict[str, Any] = {"i": i, "t_submit": t_submit, "status": "NOT_SUBMITTED"}

        async def call(method: str, url: str, k: int, **kw: Any) -> httpx.Response | None:
            try:
                r = await self.clients[k % self.n_api].request(method, url, **kw)
            except httpx.TransportError:
                stats["transport_errors"] += 1
                return None
            stats["requests"] += 1
            stats["5xx"] += r.status_code >= 500
            return r

        r = await call("POST", f"/v1/sessions/{self.sid}/executions", i, json=body)
        if r is None or r.status_code != 202:
            out["error"] = None if r is None else r.text[:300]
            return out
        eid, k = r.json()["execution_id"], i
        deadline = time.monotonic() + a.timeout_s
        while time.monotonic() < deadline:
            await asyncio.sleep(a.poll_s)
            k += 1
            g = await call("GET", f"/v1/executions/{eid}", k)
            if g is None or g.status_code != 200:
                continue
            e = g.json()
            if e["status"] in TERMINAL:
                fin = datetime.fromisoformat(e["finished_at"]).timestamp()
                u = e.get("usage") or {}
                return out | {
                    "execution_id": eid, "status": e["status"], "t_finished": fin, "t_seen": time.time(),
                    "turns": u.get("turns"), "sub_calls": u.get("sub_calls"), "error": e.get("error"),
                }  # fmt: skip
        return out | {"execution_id": eid, "status": "TIMED_OUT"}

    async def batch(self, k: int, prefix: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
        stats = {"requests": 0, "5xx": 0, "transport_errors": 0}
        runs = await asyncio.gather(*(self.execution(i, f"{prefix}-{i}", stats) for i in range(k)))
        return list(runs), stats


class Run:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="rlmx-scale-out-"))  # under /tmp: the postgres user reaches it
        (self.tmp / "logs").mkdir()
        self.procs = Procs(self.tmp / "logs")
        self.pg: LocalPostgres | None = None
        self.s3: LocalS3 | None = None
        self.run_id = f"{int(time.time())}"

    async def mock_stats(self) -> dict[str, int]:
        async with httpx.AsyncClient(timeout=10) as c:
            return (await c.get(self.mock_url + "/stats")).json()

    async def start(self) -> None:
        port = free_port()
        self.mock_url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, str(Path(__file__).with_name("_cluster_procs.py")), "mock", "--port", str(port)]
        p = self.procs.spawn("mock-llm", [*argv, "--latency-ms", str(self.args.latency_ms)], dict(os.environ))
        self.mock_pid = p.pid
        await wait_ready(self.mock_url + "/stats", p, "mock LM server")
        if "pg" in self.args.backends or self.args.runtime_steps:
            self.pg, self.s3 = LocalPostgres(), LocalS3()
            self.pg_dir = tempfile.mkdtemp(prefix="rlmx-scale-out-pg-")  # its own: the postgres user must reach it
            self.pg.start(self.pg_dir)
            self.s3.start(self.tmp / "s3")

    def close(self) -> None:
        self.procs.stop()
        if self.pg is not None:
            self.pg.stop("immediate")
            shutil.rmtree(self.pg_dir, ignore_errors=True)
        if self.s3 is not None:
            self.s3.stop()
        if self.args.keep:
            print(f"kept {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    async def throughput(self, backend: str, workers: int) -> dict[str, Any]:
        a = self.args
        name = f"{backend}-{workers}w-{self.run_id}"
        cl = Cluster(self, name, backend, workers, 2 if backend == "pg" else 1)
        try:
            await cl.start()
            warm, _ = await cl.batch(workers * a.concurrency, f"{name}-warm")
            m0, (cpu0, sys0) = await self.mock_stats(), cl.cpu()
            runs, stats = await cl.batch(a.executions, name)
            m1, (cpu1, sys1) = await self.mock_stats(), cl.cpu()
            prof = await cl.profile(runs)
        except BaseException:
            for n in cl.names:
                print(f"--- {n} log tail:\n{self.procs.log_tail(n)}", file=sys.stderr)
            raise
        finally:
            await cl.stop()
        done = [r for r in runs if r["status"] == "COMPLETED"]
        lat = [r["t_finished"] - r["t_submit"] for r in done]
        t0 = min(r["t_submit"] for r in runs)
        wall = max((r["t_finished"] for r in done), default=t0) - t0
        seen_wall = max((r["t_seen"] for r in done), default=t0) - t0
        lm_calls = m1["requests"] - m0["requests"]
        mine, busy = cpu_delta(cpu0, cpu1), sys1[0] - sys0[0]
        return {
            "config": f"{backend} {workers}w",
            "backend": backend, "workers": workers, "concurrency_per_worker": a.concurrency,
            "api_servers": cl.n_api, "executions": a.executions, "completed": len(done),
            "lost": a.executions - len(done), "5xx": stats["5xx"], "transport_errors": stats["transport_errors"],
            "requests": stats["requests"], "warmup_completed": sum(r["status"] == "COMPLETED" for r in warm),
            "wall_s": round(wall, 3), "wall_seen_by_polls_s": round(seen_wall, 3),
            "executions_per_s": round(len(done) / wall, 3) if wall > 0 else None,
            "p50_s": round(pct(lat, 0.5) or 0, 3), "p99_s": round(pct(lat, 0.99) or 0, 3),
            "mean_s": round(statistics.fmean(lat), 3) if lat else None,
            "turns_ok": all(r.get("turns") == 8 and r.get("sub_calls") == SUB_CALLS for r in done),
            "lm_calls": lm_calls, "lm_calls_per_s": round(lm_calls / wall, 1) if wall > 0 else None,
            "host_cpu_busy_cores": round(busy / max(1e-9, sys1[1] - sys0[1]) * (os.cpu_count() or 1), 2),
            "host_cpu_busy_s": round(busy, 2), "cpu_s_by_role": mine,
            "cpu_s_other_work_on_host": round(busy - sum(mine.values()), 2), "profile": prof,
            "errors": sorted({str(r.get("error"))[:200] for r in runs if r["status"] != "COMPLETED"})[:5],
        }  # fmt: skip

    async def runtime_steps(self) -> dict[str, Any]:
        """N steps on one server (its REPL stays warm) vs N steps alternating between two
        API servers (each step on the server that did not serve the previous one)."""
        n = self.args.runtime_steps
        cl = Cluster(self, f"runtime-{self.run_id}", "pg", 1, 2)
        out: dict[str, Any] = {"steps": n}
        try:
            await cl.start()
            for mode in ("one server", "alternating"):
                body = {"question": "runtime bench", "models": MODELS, "budgets": {"max_turns": n + 5}}
                r = await cl.clients[0].post(f"/v1/sessions/{cl.sid}/executions/runtime", json=body)
                r.raise_for_status()
                eid = r.json()["execution_id"]
                lat: list[float] = []
                codes: dict[str, int] = {}
                wrong, first_error = 0, None
                for k in range(n + 1):
                    code = "n = 0\nbag = list(range(1000))\nprint(n)" if k == 0 else "n += 1\nbag.append(n)\nprint(n)"
                    c = cl.clients[k % 2 if mode == "alternating" else 0]
                    t0 = time.perf_counter()
                    s = await c.post(f"/v1/executions/{eid}/steps", json={"code": code})
                    dt = time.perf_counter() - t0
                    codes[str(s.status_code)] = codes.get(str(s.status_code), 0) + 1
                    ok = s.status_code == 200 and s.json().get("stdout") == f"{k}\n"
                    if k > 0:  # step 0 starts the REPL
                        lat.append(dt)
                    if not ok:
                        wrong += 1
                        first_error = first_error or f"step {k}: {s.status_code} {s.text[:300]}"
                lat_ms = [x * 1000 for x in lat]
                out[mode] = {
                    "p50_ms": round(pct(lat_ms, 0.5) or 0, 2), "p99_ms": round(pct(lat_ms, 0.99) or 0, 2),
                    "step1_ms": round(lat_ms[0], 2), "p99_after_step1_ms": round(pct(lat_ms[1:], 0.99) or 0, 2),
                    "status_codes": codes, "wrong_or_failed": wrong, "first_error": first_error,
                }  # fmt: skip
        finally:
            await cl.stop()
        return out


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    run = Run(args)
    result: dict[str, Any] = {"args": vars(args), "host": {"cpus": os.cpu_count()}, "rows": []}
    try:
        await run.start()
        result["mock_ceiling"] = []
        for conc in (16, 64):
            c = await mock_ceiling(run.mock_url + "/v1", conc, 3.0)
            c["ideal_requests_per_s"] = round(conc / (args.latency_ms / 1000), 1)
            result["mock_ceiling"].append(c)
            print(f"mock ceiling: {c}", file=sys.stderr)
        for backend in args.backends:
            for w in args.workers:
                row = await run.throughput(backend, w)
                print(json.dumps(row), file=sys.stderr)
                result["rows"].append(row)
        ratios = {}
        for backend in args.backends:
            by_w = {r["workers"]: r["executions_per_s"] for r in result["rows"] if r["backend"] == backend}
            if by_w.get(1):
                ratios[backend] = {f"{w}w/1w": round(v / by_w[1], 2) for w, v in by_w.items() if w != 1 and v}
        result["ratios"] = ratios
        if args.runtime_steps:
            try:
                result["runtime"] = await run.runtime_steps()
            except Exception as e:  # keep the throughput figures; report the failure
                result["runtime"] = {"failed": f"{type(e).__name__}: {e}"}
    finally:
        run.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--executions", type=int, default=48, help="executions measured per configuration (K)")
    ap.add_argument("--concurrency", type=int, default=4, help="jobs per worker process (rlmx worker --concurrency)")
    ap.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    ap.add_argument("--backends", default="pg,sqlite", help="pg, sqlite or both")
    ap.add_argument("--latency-ms", type=float, default=100)
    ap.add_argument("--poll-s", type=float, default=1.0, help="interval of each execution's status polls")
    ap.add_argument("--timeout-s", type=float, default=300, help="an execution not terminal by then is lost")
    ap.add_argument("--runtime-steps", type=int, default=40, help="runtime steps per mode (0: skip)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    ap.add_argument("--out", help="write the JSON result here")
    args = ap.parse_args()
    args.workers = [int(x) for x in args.workers.split(",") if x]
    args.backends = [x for x in args.backends.split(",") if x]
    res = asyncio.run(amain(args))
    print(table(res["rows"]))
    for b, r in res["ratios"].items():
        print(f"\n{b}: {r} (target 2w/1w >= 1.8: {'met' if r.get('2w/1w', 0) >= 1.8 else 'missed'})")
    for c in res.get("mock_ceiling", []):
        ideal = c["ideal_requests_per_s"]
        print(f"mock LM ceiling at {c['concurrency']} callers: {c['requests_per_s']} req/s (ideal {ideal})")
    if "runtime" in res:
        print("\nruntime steps:", json.dumps(res["runtime"]))
    print("\n" + json.dumps(res, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
