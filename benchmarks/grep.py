"""``context.grep`` against ripgrep over a 1 GB document (issue 10, item 4), side by side.

Usage: ``.venv/bin/python benchmarks/grep.py [--mb 1024] [--rounds 5]``. Writes the corpus of
``benchmarks/sandbox.py`` (half ASCII with a needle every ~10 MB, half 2-byte text) under
/tmp, opens a real REPL over it (every sandbox layer the host allows: RE2 is imported under
seccomp and Landlock), and per round runs, for each pattern, ``context.grep`` in the REPL
(time inside the REPL) and then ``rg -c`` (``rg -P -c`` for the lookahead) on the same file
(whole process), so a loaded
machine slows both alike. Prints per pattern the path taken, hits, and the grep/rg ratio
min / median / max over the rounds (target ≤ 2×).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sandbox import big_corpus

from rlmx.sandbox import ContextSpec, SandboxPolicy, ToolRequest, make_repl

PATTERNS = [
    (r"needle-\d{6}", "literal prefilter"),
    (r"(?i)needle-\d{6}", "anchor byte + RE2"),
    (r"(?i)NEEDLE-\d+", "anchor byte + RE2"),
    (r"[a-z]+-\d{6}", "inner byte + RE2"),
    (r"\d{6}", "RE2 candidates"),
    (r"(?i)needle-\d{6}(?=\w)", "Python re (lookahead)"),
]


async def _resolver(req: ToolRequest) -> Any:
    raise RuntimeError(f"unexpected tool request {req!r}")


async def main(mb: int, rounds: int) -> None:
    rg = shutil.which("rg")
    if rg is None:
        raise SystemExit("rg is not installed (apt-get install ripgrep): no ratio to report")
    with tempfile.TemporaryDirectory(prefix="rlmx-grep-") as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o755)
        big = big_corpus(folder, mb)
        print(f"corpus: {big.length:,} characters, {os.path.getsize(big.text_path) / 2**20:,.0f} MB; {rounds} rounds")
        subprocess.run(["cat", big.text_path], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
        ratios: dict[str, list[float]] = {}
        secs: dict[str, tuple[list[float], list[float]]] = {}
        hits: dict[str, str] = {}
        async with make_repl(ContextSpec(docs=[big]), policy=SandboxPolicy()) as repl:
            r = await repl.run(
                "from rlmx.sandbox import regex_engine as _e\nprint(_e.re2_available())", turn=1, resolver=_resolver
            )
            print(f"re2 importable inside the REPL: {r.stdout.strip() or r.error}")
            turn = 2
            for _ in range(rounds):
                for pattern, _note in PATTERNS:
                    code = (
                        "import time\nt0 = time.perf_counter()\n"
                        f"hits = context.grep({pattern!r}, max_hits=10**6)\n"
                        "print(len(hits), time.perf_counter() - t0)\n"
                    )
                    r = await repl.run(code, turn=turn, resolver=_resolver)
                    turn += 1
                    if r.error:
                        raise SystemExit(r.error)
                    n, g = r.stdout.split()
                    t0 = time.perf_counter()
                    pcre = ["-P"] if "(?=" in pattern else []  # rg's default engine has no lookahead
                    out = subprocess.run([rg, *pcre, "-c", pattern, big.text_path], capture_output=True, text=True)
                    rs = time.perf_counter() - t0
                    hits[pattern] = f"{n} hits / rg {out.stdout.strip()} lines"
                    ratios.setdefault(pattern, []).append(float(g) / rs)
                    secs.setdefault(pattern, ([], []))[0].append(float(g))
                    secs[pattern][1].append(rs)
        print(f"{'pattern':<26} {'path':<22} {'grep med s':>10} {'rg med s':>9}  ratio min / median / max")
        for pattern, note in PATTERNS:
            xs = ratios[pattern]
            g_med, r_med = statistics.median(secs[pattern][0]), statistics.median(secs[pattern][1])
            print(
                f"{pattern:<26} {note:<22} {g_med:10.3f} {r_med:9.3f}  "
                f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f}   ({hits[pattern]})"
            )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    asyncio.run(main(args.mb, args.rounds))
