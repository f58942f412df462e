"""REPL memory against corpus size: open a document, slice it, report the REPL's memory.

Usage: ``.venv/bin/python benchmarks/repl_memory.py [--mb 10,1000]``.

For each size, a document of that many MB (mostly ASCII, with some non-ASCII so the offset
index is used) is stored, a REPL process opens it, reads ``len``, one slice, then 100
slices of 1,000 characters spread over the whole document. Printed per stage: the REPL
process's anonymous resident memory (``RssAnon``: heap, what grows if text is loaded) and
file-backed resident memory (``RssFile``: mapped page-cache pages, shared and reclaimable).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from typing import Any

from rlmx.sandbox import LocalREPL
from rlmx.sandbox.testing import spec_from_texts

RSS = (
    "print(' '.join(l.split(None, 1)[1].strip().replace(' kB', 'kB') for l in open('/proc/self/status') "
    "if l.startswith(('RssAnon', 'RssFile'))))"
)
STAGES = [
    ("opened", "d = context[0]"),
    ("len()", "n = len(d)"),
    ("1 slice", "x = d[n // 2 : n // 2 + 1000]"),
    ("100 slices", "parts = [d[i : i + 1000] for i in range(0, n, n // 100)]"),
]


async def _resolver(req: Any) -> str:
    return ""


async def measure(mb: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        line = "The quick brown fox jumps over the lazy dog. " * 23 + "Zürich café.\n"
        spec = spec_from_texts(folder, {"big.txt": line * (mb * 1_000_000 // len(line))}, index=False)
        repl = LocalREPL(spec)
        await repl.start()
        try:
            for turn, (name, code) in enumerate(STAGES, 1):
                r = await repl.run(f"{code}\n{RSS}", turn=turn, resolver=_resolver)
                anon, file = r.stdout.split()
                print(f"{mb:>6} MB  {name:<11} RssAnon {anon:>10}   RssFile {file:>10}")
        finally:
            await repl.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", default="10,1000", help="comma-separated document sizes in MB")
    for mb in ap.parse_args().mb.split(","):
        asyncio.run(measure(int(mb)))


if __name__ == "__main__":
    main()
