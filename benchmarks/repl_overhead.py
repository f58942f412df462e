"""REPL overhead: process start, a no-op step, a tool round trip, slices of a large document.

Usage: ``.venv/bin/python benchmarks/repl_overhead.py [--steps 200] [--mb 200]``.
Prints median and p95 in milliseconds. Slice latency is measured inside the REPL process
(``doc[a:b]`` on a document of ``--mb`` MB, half of it non-ASCII), so it excludes the step.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rlmx.corpus.canonical import CHECKPOINT
from rlmx.sandbox import ContextDoc, ContextSpec, LocalREPL, ToolRequest
from rlmx.sandbox.testing import spec_from_texts


def _stats(name: str, xs: list[float]) -> None:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(0.95 * len(xs)))]
    print(f"{name:<34} n={len(xs):<5} median {statistics.median(xs) * 1e3:8.3f} ms   p95 {p95 * 1e3:8.3f} ms")


def _big_doc(folder: Path, mb: int) -> ContextDoc:
    """A ``mb`` MB document: ASCII lines, then 2-byte characters (offset index computed)."""
    import array

    half = mb * 2**20 // 2
    unit_a = "x" * 99 + "\n"
    unit_u = ("é" * 1023 + "\n") * 4  # CHECKPOINT characters, 2 bytes each but the newline
    path = folder / "big.txt"
    with open(path, "w", encoding="utf-8") as f:
        n_a = half // len(unit_a) // CHECKPOINT * CHECKPOINT  # lines; a whole number of checkpoints
        f.write(unit_a * n_a)
        n_u = half // len(unit_u.encode())
        for _ in range(n_u):
            f.write(unit_u)
    la = n_a * len(unit_a)
    length = la + n_u * CHECKPOINT
    step_a, step_u = CHECKPOINT, len(unit_u.encode())
    idx = array.array("Q", [i * step_a for i in range(la // CHECKPOINT + 1)])
    idx.extend(la + j * step_u for j in range(1, n_u + 1))
    (folder / "big.idx").write_bytes(idx.tobytes())
    return ContextDoc(
        doc_id="doc_big",
        name="big.txt",
        length=length,
        text_path=str(path),
        index_path=str(folder / "big.idx"),
    )


async def main(steps: int, mb: int) -> None:
    async def resolver(req: ToolRequest) -> Any:
        return "ok"

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        small = spec_from_texts(folder / "small", {"a.txt": "hello world\n" * 100})
        big = _big_doc(folder, mb)
        spec = ContextSpec(docs=[*small.docs, big], index_path=small.index_path)

        starts = []
        for _ in range(10):
            t0 = time.perf_counter()
            repl = LocalREPL(spec)
            await repl.start()
            starts.append(time.perf_counter() - t0)
            await repl.close()
        _stats("REPL start (spawn + init + ready)", starts)

        async with LocalREPL(spec) as repl:
            noop, tool = [], []
            for i in range(steps):
                t0 = time.perf_counter()
                await repl.run("pass", turn=i, resolver=resolver)
                noop.append(time.perf_counter() - t0)
            _stats("no-op step", noop)
            for i in range(steps):
                t0 = time.perf_counter()
                await repl.run("llm_query('x')", turn=i, resolver=resolver)
                tool.append(time.perf_counter() - t0)
            _stats("step with one llm_query round trip", tool)
            code = (
                "import random, time\n"
                "doc = context[1]; n = len(doc); rnd = random.Random(0)\n"
                "for w in (100, 10_000):\n"
                "    ts = []\n"
                "    for _ in range(2000):\n"
                "        a = rnd.randrange(n - w)\n"
                "        t0 = time.perf_counter(); doc[a:a + w]\n"
                "        ts.append(time.perf_counter() - t0)\n"
                "    ts.sort()\n"
                "    print(w, ts[len(ts) // 2], ts[int(len(ts) * 0.95)])\n"
                "t0 = time.perf_counter(); i = doc.find('NOT THERE'); t1 = time.perf_counter()\n"
                "print('find', t1 - t0, n)\n"
            )
            check = f"assert context[1][{big.length - 2}:] == 'é\\n'"
            r = await repl.run(check + "\n" + code, turn=0, resolver=resolver)
            if r.error:
                raise SystemExit(r.error)
            for line in r.stdout.splitlines():
                parts = line.split()
                if parts[0] == "find":
                    print(
                        f"{'find (miss) over the whole doc':<34} {float(parts[1]) * 1e3:8.1f} ms"
                        f" for {int(parts[2]):,} characters ({mb} MB)"
                    )
                else:
                    label = f"slice of {int(parts[0]):,} chars ({mb} MB doc)"
                    print(
                        f"{label:<34} n=2000  median {float(parts[1]) * 1e3:8.3f} ms"
                        f"   p95 {float(parts[2]) * 1e3:8.3f} ms"
                    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--mb", type=int, default=200)
    a = ap.parse_args()
    asyncio.run(main(a.steps, a.mb))
