"""``rlmx serve`` under tracemalloc, for finding what grows in ``benchmarks/service_load.py
--tracemalloc DIR``: ``python benchmarks/_service_load_server.py DIR serve --port P ...``.

On SIGUSR1 the server (main thread, between two bytecodes of its event loop) runs a full GC
and writes ``DIR/snap-N.pickle`` (a :class:`tracemalloc.Snapshot`, 10 frames a trace) and
``DIR/objects-N.json`` (live gc-tracked objects counted by type). :func:`report` compares
two of them. tracemalloc slows the server (roughly 2x): use it to find a leak, never for
the figures.
"""

from __future__ import annotations

import collections
import gc
import json
import signal
import sys
import tracemalloc
from pathlib import Path
from typing import Any

__all__ = ["report"]


def _dump(folder: Path, n: int) -> None:
    gc.collect()
    tracemalloc.take_snapshot().dump(str(folder / f"snap-{n}.pickle"))
    counts = collections.Counter(type(o).__module__ + "." + type(o).__qualname__ for o in gc.get_objects())
    (folder / f"objects-{n}.json").write_text(json.dumps(dict(counts.most_common(400))))
    (folder / f"done-{n}").write_text("")


def report(folder: Path, a: int, b: int, top: int = 15) -> dict[str, Any]:
    """What grew from dump ``a`` to dump ``b`` of ``folder``: the ``top`` allocation sites
    by bytes gained (KiB, with the innermost frames of the repo) and object types by count."""
    s0 = tracemalloc.Snapshot.load(str(folder / f"snap-{a}.pickle"))
    s1 = tracemalloc.Snapshot.load(str(folder / f"snap-{b}.pickle"))
    sites = []
    for st in s1.compare_to(s0, "traceback")[:top]:
        frames = [f"{f.filename.split('site-packages/')[-1].split('/src/')[-1]}:{f.lineno}" for f in st.traceback]
        sites.append({"kib": round(st.size_diff / 1024, 1), "count": st.count_diff, "frames": frames[-6:]})
    o0 = json.loads((folder / f"objects-{a}.json").read_text())
    o1 = json.loads((folder / f"objects-{b}.json").read_text())
    grew = sorted(((o1[k] - o0.get(k, 0), k) for k in o1), reverse=True)[:top]
    return {"sites": sites, "objects": [{"type": k, "gained": d} for d, k in grew if d > 0]}


def main() -> None:
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(10)
    count = [0]

    def on_usr1(*_: Any) -> None:
        count[0] += 1
        _dump(folder, count[0])

    signal.signal(signal.SIGUSR1, on_usr1)
    sys.argv = ["rlmx", *sys.argv[2:]]
    from rlmx.cli.main import main as rlmx_main

    rlmx_main()


if __name__ == "__main__":
    main()
