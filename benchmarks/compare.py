"""rlmx side by side with the official ``rlms`` library, interleaved (issue 10, item 6).

Usage: ``sh benchmarks/compare.sh [--quick] [--repeat N] [--write-doc] [--only startup,turns,...]``
(the same options as ``.venv/bin/python benchmarks/compare.py``; about 5 min on 2 cores,
``--quick`` about 1 min). The official library
(PyPI ``rlms==0.1.3``, import name ``rlm``) runs from its own venv: ``$RLMS_PYTHON``, else
``.bench/rlms-venv/bin/python`` (``sh benchmarks/compare.sh --setup-rlms`` creates it); without
it only rlmx's side runs and the table says so.

Both sides talk to the same kind of local OpenAI-compatible server, ``rlmx dev mock-llm``, a
separate process started per measure with a script of replies per root model (``rlmx-root``,
``rlms-root``; other models, the sub-LMs, are echoed). One reply format ends a run on both:
``answer["content"] = ...; answer["ready"] = True`` in a ```` ```repl ```` block (rlms's own
way; rlmx accepts it beside ``FINAL``). Each repeat runs rlmx then rlms, the next one rlms then
rlmx. Measures (rows):

``startup``  spawn → first root call at the server (stamped by a pass-through proxy in this
             process, on the spawn's clock), and the whole process, spawn → exit, of a run that
             ends on turn 1 over a small text (``shared/data/tinyshakespeare.txt``, 1.1 MB):
             ``rlmx ask --no-cache`` on the file already ingested into the run's ``RLMX_HOME``
             vs ``_rlms_side.py startup`` (reads the file, ``RLM.completion``); one untimed
             run per side first.
``turns``    seconds per root turn at 0 ms LM through each side's real client and HTTP, a
             ``--turns`` run (default 100), median per run, and flatness: the median of the last
             10 turns over the first 10 (``_compare_rlmx.py`` / ``_rlms_side.py turns``).
``fanout``   ``--prompts`` sub-calls (default 1,000) at 100 ms, concurrency 64 and 16, through
             HTTP: the REPL step's wall time over the ideal ``ceil(N / C) × 0.1 s``. rlmx:
             ``benchmarks/fanout.py --json`` (its own mock server process); rlms: one REPL
             block ``llm_query_batched`` with ``LMHandler.batch_max_concurrent`` set to C; beside
             them, interleaved, ``fanout.py --bare-sdk`` and ``--server-ceiling`` (no rlmx).
``grep``     ``benchmarks/grep.py`` (``context.grep`` over ``--grep-mb`` MB vs ``rg``); rlms has
             no grep, so that row compares with ripgrep only.
``rss``      a 2-turn run (``print(len(context))``, then the end) over a ``--rss-mb`` MiB text:
             wall time and the peak PSS of the process tree (sampled every 20 ms). rlmx: the
             file already ingested, ``rlmx ask``; rlms: the script reads the file into a string.

``--write-doc`` replaces the region between ``<!-- compare:begin -->`` and
``<!-- compare:end -->`` in docs/benchmarks.md (appending the section at the end the first
time); every run also writes the raw figures to ``.bench/compare-last.json``.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _compare_doc import Row, machine, read_json, render, write_doc, write_json
from _compare_procs import RLMX_PY, last_json, mock_server, run, stamping_proxy, write_text_file

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SMALL = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
RLMS_SIDE = BENCH / "_rlms_side.py"
STEP = "```repl\nx = 1\n```"
LOOK = "```repl\nprint(len(context))\n```"
END = '```repl\nanswer["content"] = "done"\nanswer["ready"] = True\n```'
MEASURES = ("startup", "turns", "fanout", "grep", "rss")


def fanout_block(prompts: int) -> str:
    """The rlms root reply of the fan-out row: one batched query, timed inside the REPL."""
    return (
        "```repl\nimport time\n_t = time.perf_counter()\n"
        f"r = llm_query_batched([f'prompt {{i}}' for i in range({prompts})])\n"
        "answer['content'] = f'{len(r)} {time.perf_counter() - _t:.6f}'\nanswer['ready'] = True\n```"
    )


def rlms_python(explicit: str | None) -> str | None:
    """The rlms venv's python, or None when it is absent or cannot import ``rlm``."""
    py = explicit or os.environ.get("RLMS_PYTHON") or str(ROOT / ".bench" / "rlms-venv" / "bin" / "python")
    if not Path(py).exists():
        return None
    ok = subprocess.run([py, "-c", "import rlm"], capture_output=True).returncode == 0
    return py if ok else None


def base_env() -> dict[str, str]:
    """This environment without bytecode suppression (each process would recompile all) and
    without PYTHONPATH (the rlms venv must not see rlmx's tree)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env["OPENAI_API_KEY"] = "mock"
    return env


def interleave(repeat: int, sides: dict[str, Callable[[], Any]]) -> dict[str, list[Any]]:
    """Run each side ``repeat`` times, alternating which goes first."""
    out: dict[str, list[Any]] = {k: [] for k in sides}
    names = list(sides)
    for i in range(repeat):
        for name in names if i % 2 == 0 else names[::-1]:
            out[name].append(sides[name]())
    return out


class Bench:
    """The measures; ``self.rlms`` is the rlms venv's python or None."""

    def __init__(self, a: argparse.Namespace, rlms: str | None, work: Path):
        self.a, self.rlms, self.work = a, rlms, work
        self.home = work / "rlmx-home"
        self.env = base_env()

    def rlmx_env(self, url: str) -> dict[str, str]:
        return dict(self.env, RLMX_HOME=str(self.home), OPENAI_BASE_URL=url)

    def ingest(self, path: Path) -> None:
        run([RLMX_PY, "-m", "rlmx.cli", "ingest", "--quiet", str(path)], dict(self.env, RLMX_HOME=str(self.home)))

    def ask_cmd(self, path: Path, question: str) -> list[str]:
        rlmx = str(Path(RLMX_PY).with_name("rlmx"))
        return [rlmx, "ask", "--quiet", "--no-cache", "--model", "openai:rlmx-root", str(path), question]

    def rlms_cmd(self, mode: str, url: str, *extra: str) -> list[str]:
        assert self.rlms
        return [self.rlms, str(RLMS_SIDE), mode, *extra, "--base-url", url]

    def sides(self, rlmx: Callable[[], Any], rlms: Callable[[], Any]) -> dict[str, list[Any]]:
        fns = {"rlmx": rlmx, "rlms": rlms} if self.rlms else {"rlmx": rlmx}
        return interleave(self.n, fns)

    n = 1

    # -- rows ----------------------------------------------------------------------------
    def startup(self) -> list[Row]:
        self.n = self.a.repeat
        self.ingest(SMALL)
        with (
            mock_server({"rlmx-root": [END] * (self.n + 1), "rlms-root": [END] * (self.n + 1)}) as target,
            stamping_proxy(target) as (url, stamps),
        ):

            def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
                n = len(stamps)
                r = run(cmd, env)
                if len(stamps) != n + 1:
                    raise SystemExit(f"{cmd[0]}: expected one root call, the server saw {len(stamps) - n}")
                return stamps[n] - r.started, r.wall_s

            def rlmx() -> tuple[float, float]:
                return timed(self.ask_cmd(SMALL, "start-up benchmark"), self.rlmx_env(url))

            def rlms() -> tuple[float, float]:
                return timed(self.rlms_cmd("startup", url, str(SMALL)), self.env)

            rlmx()  # one untimed run per side: bytecode compiled, files in the page cache
            if self.rlms:
                rlms()
            got = self.sides(rlmx, rlms)
        first = {k: [x[0] for x in v] for k, v in got.items()}
        wall = {k: [x[1] for x in v] for k, v in got.items()}
        return [
            Row("start-up: spawn → first root call reaches the server", "s", first, target="≤ 0.3× rlms"),
            Row("fixed start-up of a run (FINAL on turn 1), whole process spawn → exit", "s", wall),
        ]

    def turns(self) -> list[Row]:
        self.n, t = self.a.repeat_long, self.a.turns
        script = ([STEP] * (t - 1) + [END]) * self.n
        per_run: dict[str, list[list[float]]] = {}
        with mock_server({"rlmx-root": script, "rlms-root": script}) as url:
            rlmx = [RLMX_PY, str(BENCH / "_compare_rlmx.py"), "turns", str(SMALL), "--home", str(self.home)]
            got = self.sides(
                lambda: last_json(run(rlmx, self.rlmx_env(url)).stdout)["turn_s"],
                lambda: last_json(run(self.rlms_cmd("turns", url, str(SMALL)), self.env).stdout)["turn_s"],
            )
        per_run = {k: [list(map(float, v)) for v in vs] for k, vs in got.items()}
        for side, runs in per_run.items():
            if any(len(r) != t - 1 for r in runs):
                raise SystemExit(f"{side}: expected {t - 1} turn intervals, got {[len(r) for r in runs]}")
        med = {k: [statistics.median(r) * 1e3 for r in v] for k, v in per_run.items()}
        flat = {k: [statistics.median(r[-10:]) / statistics.median(r[:10]) for r in v] for k, v in per_run.items()}
        return [
            Row(
                f"time per root turn at 0 ms LM, real client + HTTP ({t}-turn run, median)", "ms", med, target="≤ 4 ms"
            ),
            Row("flatness: median of last 10 turns / first 10", "×", flat, target="≈ 1", ratio=False),
        ]

    def fanout(self) -> list[Row]:
        self.n, p = self.a.repeat_long, self.a.prompts
        rows = []
        for c in (64, 16):
            ideal = math.ceil(p / c) * 0.1
            cmd = [RLMX_PY, str(BENCH / "fanout.py"), "--prompts", str(p), "--concurrency", str(c)]
            cmd += ["--latency-ms", "100", "--repeat", "1", "--json"]

            def rlmx(cmd: list[str] = cmd) -> float:
                figures = last_json(run(cmd, self.env).stdout)["runs"]
                assert isinstance(figures, list)
                return float(figures[0]["step_s"])

            def rlms(c: int = c) -> float:
                with mock_server({"rlms-root": [fanout_block(p)]}, latency_ms=100) as url:
                    answer = str(
                        last_json(run(self.rlms_cmd("fanout", url, "--concurrency", str(c)), self.env).stdout)["answer"]
                    )
                n, secs = answer.split()
                if int(n) != p:
                    raise SystemExit(f"rlms fan-out answered {answer!r}")
                return float(secs)

            def bare(flag: str, c: int = c) -> float:
                cmd = [RLMX_PY, str(BENCH / "fanout.py"), flag, "--prompts", str(p), "--concurrency", str(c)]
                figures = last_json(run([*cmd, "--latency-ms", "100", "--repeat", "1", "--json"], self.env).stdout)
                assert isinstance(figures["runs"], list)
                return float(figures["runs"][0]["step_s"])

            fns: dict[str, Callable[[], float]] = {"rlmx": rlmx}
            if self.rlms:
                fns["rlms"] = rlms
            fns["sdk"] = lambda: bare("--bare-sdk")
            fns["ceiling"] = lambda: bare("--server-ceiling")
            got = interleave(self.n, fns)
            refs = []
            for key, what in (("sdk", "the `openai` SDK alone"), ("ceiling", "the server's ceiling (bare aiohttp)")):
                xs = got.pop(key)
                med = statistics.median(xs)
                refs.append(f"{what} {min(xs):.2f} / **{med:.2f}** / {max(xs):.2f} s ({med / ideal:.2f}× ideal)")
            note = (
                f"same server, without rlmx (`fanout.py --bare-sdk`, `--server-ceiling`): {'; '.join(refs)}. "
                f"rlms bounds a batch by `LMHandler.batch_max_concurrent` (16, not an `RLM` argument), set to {c} here"
            )
            target = "≤ 1.2× ideal" if c == 64 else "≤ 1.05× ideal"
            name = f"{p:,} sub-calls at 100 ms, concurrency {c}, HTTP (ideal {ideal:.1f} s)"
            rows.append(Row(name, "s", got, target, ideal=ideal, note=note))
        return rows

    def grep(self) -> list[Row]:
        if shutil.which("rg") is None:
            return [Row("context.grep vs rg", "", {"rlmx": []}, note="rg is not installed: no row")]
        cmd = [RLMX_PY, str(BENCH / "grep.py"), "--mb", str(self.a.grep_mb), "--rounds", str(self.a.repeat_long)]
        out = run(cmd, self.env, timeout=1800).stdout
        rows = []
        for line in out.splitlines():
            m = re.match(r"^(\S+)\s+(.+?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+) / ([\d.]+) / ([\d.]+)", line)
            if not m:
                continue
            pat, path, g, r, lo, mid, hi = m.groups()
            rows.append(
                Row(
                    f'`context.grep(r"{pat}")` over {self.a.grep_mb:,} MB vs `rg` ({path})',
                    "s",
                    {"rlmx": [float(g)]},
                    note=""
                    if rows
                    else f"median of {self.a.repeat_long} rounds, grep timed inside the REPL, rg whole process",
                    target="≤ 2× rg",
                    rg=(float(r), float(lo), float(mid), float(hi)),
                )
            )
        if not rows:
            raise SystemExit(f"could not read grep.py's table:\n{out}")
        return rows

    def rss(self) -> list[Row]:
        self.n, mb = self.a.repeat_long, self.a.rss_mb
        big = write_text_file(self.work.parent / f"compare-text-{mb}mb.txt", mb)
        self.ingest(big)
        script = [LOOK, END] * self.n
        with mock_server({"rlmx-root": script, "rlms-root": script}) as url:
            got = self.sides(
                lambda: run(self.ask_cmd(big, "peak memory benchmark"), self.rlmx_env(url), sample_memory=True),
                lambda: run(self.rlms_cmd("rss", url, str(big)), self.env, sample_memory=True),
            )
        walls = {k: [r.wall_s for r in v] for k, v in got.items()}
        pss = {k: [r.peak_pss_mib for r in v] for k, v in got.items()}
        hwm = {k: statistics.median(r.hwm_mib for r in v) for k, v in got.items()}
        note = "root process's own peak RSS (VmHWM), median: " + ", ".join(f"{k} {v:,.0f} MiB" for k, v in hwm.items())
        return [
            Row(f"2-turn run over {mb:,} MiB of text, whole process (rlmx: already ingested)", "s", walls),
            Row(f"peak PSS of the process tree, same run ({mb:,} MiB text)", "MiB", pss, note=note),
        ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller inputs (~3 min)")
    ap.add_argument("--repeat", type=int, default=None, help="repeats of the short measures (default 5; quick 3)")
    ap.add_argument("--repeat-long", type=int, default=None, help="repeats of the long ones (default 3; quick 1)")
    ap.add_argument("--turns", type=int, default=None, help="turns of the per-turn run (default 100; quick 40)")
    ap.add_argument("--prompts", type=int, default=1000, help="sub-calls of the fan-out rows")
    ap.add_argument("--grep-mb", type=int, default=None, help="grep corpus, MB (default 1024; quick 256)")
    ap.add_argument("--rss-mb", type=int, default=None, help="text of the memory row, MiB (default 1024; quick 64)")
    ap.add_argument("--only", default=",".join(MEASURES), help=f"comma-separated subset of {','.join(MEASURES)}")
    ap.add_argument("--rlms-python", default=None, help="python of the rlms venv (default $RLMS_PYTHON or .bench/)")
    ap.add_argument("--write-doc", action="store_true", help="write the table into docs/benchmarks.md")
    ap.add_argument("--from-json", type=Path, help="re-render a saved run (.bench/compare-last.json), measure nothing")
    a = ap.parse_args(argv)
    if a.from_json:
        saved = read_json(a.from_json)
        a.repeat, a.repeat_long = saved["repeat"], saved["repeat_long"]
        rows = [Row(**r) for r in saved["rows"]]
        kw = {k: saved[k] for k in ("command", "rlms", "start", "end", "took_s")}
        text = render(rows, args=a, **kw)
        print(text)
        if a.write_doc:
            write_doc(ROOT / "docs" / "benchmarks.md", text)
        return 0
    q = a.quick
    a.repeat = a.repeat or (3 if q else 5)
    a.repeat_long = a.repeat_long or (1 if q else 3)
    a.turns = a.turns or (40 if q else 100)
    a.grep_mb = a.grep_mb or (256 if q else 1024)
    a.rss_mb = a.rss_mb or (64 if q else 1024)
    only = [m.strip() for m in a.only.split(",") if m.strip()]
    if unknown := set(only) - set(MEASURES):
        ap.error(f"unknown measures: {', '.join(sorted(unknown))}")
    rlms = rlms_python(a.rlms_python)
    if rlms is None:
        print("the official rlms is not installed (sh benchmarks/compare.sh --setup-rlms): rlmx only", file=sys.stderr)
    start = machine()
    t0 = time.monotonic()
    rows: list[Row] = []
    (ROOT / ".bench").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rlmx-compare-", dir=ROOT / ".bench") as tmp:
        work = Path(tmp) / "w"
        work.mkdir()
        bench = Bench(a, rlms, work)
        for name in only:
            print(f"== {name}", file=sys.stderr, flush=True)
            rows.extend(getattr(bench, name)())
    end = machine()
    shown = [x for x in (sys.argv[1:] if argv is None else argv) if x != "--write-doc"]
    command = " ".join(["sh benchmarks/compare.sh", *shown])
    took = time.monotonic() - t0
    text = render(rows, command=command, rlms=rlms, start=start, end=end, took_s=took, args=a)
    print(text)
    run_info = {"command": command, "rlms": rlms, "took_s": took, "repeat": a.repeat, "repeat_long": a.repeat_long}
    write_json(ROOT / ".bench" / "compare-last.json", rows, start, end, run_info)
    if a.write_doc:
        write_doc(ROOT / "docs" / "benchmarks.md", text)
        print("wrote docs/benchmarks.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
