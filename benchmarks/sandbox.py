"""Sandbox speed (issue 3, item 7): REPL start, no-op step, slices and grep over a 1 GB corpus.

Usage: ``.venv/bin/python benchmarks/sandbox.py [--mb 1024] [--steps 300] [--starts 30]
[--runner local|bwrap]``. Every layer the host allows is on (the default policy; see
``rlmx doctor``). Prints median and p95 in milliseconds and the targets:

* no-op step (``pass``, with its snapshot) ≤ 5 ms median;
* REPL start per execution (fork from the warm zygote, layers, context open, ready)
  ≤ 50 ms;
* ``context.grep`` over the corpus within 2× of ``rg`` on the same file (three patterns: a
  literal start, an inner literal, and a case-insensitive one that no literal prefilter
  serves);
* REPL memory independent of corpus size (anonymous RSS of the REPL process after slicing
  and grepping the 1 GB corpus vs. a 1 KB one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from rlmx.corpus.canonical import CHECKPOINT
from rlmx.sandbox import ContextDoc, ContextSpec, SandboxPolicy, ToolRequest, make_repl
from rlmx.sandbox.local import LocalREPL
from rlmx.sandbox.testing import spec_from_texts

PATTERNS = [
    (r"needle-\d{6}", "literal start: raw-byte prefilter"),
    (r"[Nn]eedle-\d{6}", "inner literal: raw-byte prefilter"),
    (r"(?i)needle-\d{6}", "no usable literal: Python re, block by block"),
]


async def _resolver(req: ToolRequest) -> Any:
    return "ok"


def _stats(xs: list[float]) -> tuple[float, float]:
    xs = sorted(xs)
    return statistics.median(xs), xs[min(len(xs) - 1, int(0.95 * len(xs)))]


def _line(name: str, xs: list[float], target: str = "") -> None:
    med, p95 = _stats(xs)
    print(f"{name:<44} n={len(xs):<5} median {med * 1e3:8.2f} ms   p95 {p95 * 1e3:8.2f} ms  {target}")


def big_corpus(folder: Path, mb: int) -> ContextDoc:
    """A ``mb`` MB document: ASCII lines with a needle every ~10 MB, then 2-byte text."""
    import array

    half = mb * 2**20 // 2
    line = "the quick brown fox jumps over the lazy dog; " * 2 + "lorem ipsum\n"
    unit_a = line * (CHECKPOINT // len(line) + 1)
    unit_a = unit_a[: CHECKPOINT - 1] + "\n"
    unit_u = ("é" * 1023 + "\n") * 4
    path = folder / "big.txt"
    n_a = half // CHECKPOINT
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n_a):
            if i % 2500 == 0:
                needle = f"needle-{i:06d}"
                f.write(needle + unit_a[len(needle) :])
            else:
                f.write(unit_a)
        n_u = half // len(unit_u.encode())
        f.write(unit_u * n_u)
    la = n_a * CHECKPOINT
    length = la + n_u * CHECKPOINT
    step_u = len(unit_u.encode())
    idx = array.array("Q", [i * CHECKPOINT for i in range(n_a + 1)])
    idx.extend(la + j * step_u for j in range(1, n_u + 1))
    (folder / "big.idx").write_bytes(idx.tobytes())
    return ContextDoc(
        doc_id="doc_big", name="big.txt", length=length, text_path=str(path), index_path=str(folder / "big.idx")
    )


def anon_kb(pid: int | None) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return -1


async def main(mb: int, steps: int, starts: int, runner: str) -> None:
    policy = SandboxPolicy(runner=runner)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory(prefix="rlmx-bench-") as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o755)
        small = spec_from_texts(folder / "small", {"a.txt": "hello world\n" * 100})
        t0 = time.perf_counter()
        big = big_corpus(folder, mb)
        print(
            f"corpus: {big.length:,} characters, {os.path.getsize(big.text_path) / 2**20:,.0f} MB "
            f"(written in {time.perf_counter() - t0:.1f} s)"
        )
        spec = ContextSpec(docs=[big])

        # REPL start per execution (the first start also starts the zygote)
        t0 = time.perf_counter()
        async with make_repl(small, policy=policy) as repl:
            pass
        print(f"{'first REPL of the process (local: zygote start)':<44} {(time.perf_counter() - t0) * 1e3:8.1f} ms")
        xs = []
        for _ in range(starts):
            t0 = time.perf_counter()
            repl = make_repl(spec, policy=policy)
            await repl.start()
            xs.append(time.perf_counter() - t0)
            await repl.close()
        _line(f"REPL start per execution ({mb} MB corpus)", xs, "target <= 50 ms median")
        if runner == "local":
            xs = []
            cold = policy.model_copy(update={"zygote": False})
            for _ in range(max(3, starts // 5)):
                t0 = time.perf_counter()
                repl = make_repl(spec, policy=cold)
                await repl.start()
                xs.append(time.perf_counter() - t0)
                await repl.close()
            _line("  (without the zygote: new interpreter)", xs)

        async with make_repl(spec, policy=policy) as repl:
            assert isinstance(repl, LocalREPL)
            active = sorted(k for k, v in repl.layers.items() if v.get("active"))
            missing = sorted(k for k, v in repl.layers.items() if not v.get("active"))
            print(f"layers active: {', '.join(active)}; missing: {', '.join(missing) or 'none'}")
            xs = []
            for i in range(steps):
                t0 = time.perf_counter()
                await repl.run("pass", turn=i + 1, resolver=_resolver)
                xs.append(time.perf_counter() - t0)
            _line("no-op step (all layers, snapshot)", xs, "target <= 5 ms median")
            await repl.run("nums = list(range(1000))\ntext = 'x' * 100_000", turn=steps + 1, resolver=_resolver)
            xs = []
            for i in range(steps // 3):
                t0 = time.perf_counter()
                await repl.run("pass", turn=steps + 2 + i, resolver=_resolver)
                xs.append(time.perf_counter() - t0)
            _line("no-op step with 2 small variables saved", xs)

            code = (
                "import random, time\n"
                "doc = context[0]; n = len(doc); rnd = random.Random(0)\n"
                "for w in (100, 10_000, 1_000_000):\n"
                "    ts = []\n"
                "    for _ in range(500):\n"
                "        a = rnd.randrange(n - w)\n"
                "        t0 = time.perf_counter(); doc[a:a + w]\n"
                "        ts.append(time.perf_counter() - t0)\n"
                "    ts.sort()\n"
                "    print('slice', w, ts[len(ts) // 2], ts[int(len(ts) * 0.95)])\n"
            )
            r = await repl.run(code, turn=10_000, resolver=_resolver)
            if r.error:
                raise SystemExit(r.error)
            for line in r.stdout.splitlines():
                _, w, med, p95 = line.split()
                label = f"slice of {int(w):,} chars ({mb} MB doc)"
                print(f"{label:<44} n=500   median {float(med) * 1e3:8.3f} ms   p95 {float(p95) * 1e3:8.3f} ms")

            # grep vs ripgrep: warm the page cache first, best of 3 each
            subprocess.run(["cat", big.text_path], stdout=subprocess.DEVNULL, check=True)
            rg = shutil.which("rg")
            for pattern, note in PATTERNS:
                grep_code = (
                    "import time\nt0 = time.perf_counter()\n"
                    f"hits = context.grep({pattern!r}, max_hits=10**6)\n"
                    "print(len(hits), time.perf_counter() - t0)\n"
                )
                gs = []
                n_hits = "0"
                for i in range(3):
                    r = await repl.run(grep_code, turn=20_000 + i, resolver=_resolver)
                    if r.error:
                        raise SystemExit(r.error)
                    n_hits, secs = r.stdout.split()
                    gs.append(float(secs))
                print(f"{'context.grep ' + pattern:<44} best {min(gs):8.3f} s   {int(n_hits)} hits ({note})")
                if rg:
                    rs = []
                    for _ in range(3):
                        t0 = time.perf_counter()
                        out = subprocess.run([rg, "-c", pattern, big.text_path], capture_output=True, text=True)
                        rs.append(time.perf_counter() - t0)
                    print(f"{'rg -c ' + pattern:<44} best {min(rs):8.3f} s   {out.stdout.strip()} matching lines")
                    print(f"{'grep / rg ratio':<44} {min(gs) / min(rs):8.2f}x   target <= 2x")
                else:
                    print("rg: not installed (apt-get install ripgrep); no ratio")
            big_anon = anon_kb(repl.pid)

        async with make_repl(small, policy=policy) as repl:
            await repl.run("context[0][0:100]\ncontext.grep('hello', max_hits=10)", turn=1, resolver=_resolver)
            small_anon = anon_kb(repl.pid)
        print(
            f"{'REPL anonymous memory, 1 KB vs ' + str(mb) + ' MB corpus':<44} {small_anon / 1024:8.1f} MB vs "
            f"{big_anon / 1024:.1f} MB (after slicing and grepping it)"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--starts", type=int, default=30)
    ap.add_argument("--runner", choices=["local", "bwrap"], default="local")
    a = ap.parse_args()
    asyncio.run(main(a.mb, a.steps, a.starts, a.runner))
