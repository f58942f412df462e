"""Ingestion benchmark: ingest a folder into a fresh, temporary RLMX_HOME, twice.

Usage: ``python benchmarks/ingest.py [--workers N] [FOLDER ...]`` (default:
``../shared/data/state_union`` beside the project). Prints, for the first run: files,
documents, failures, megabytes read (raw bytes, MB = 10^6), seconds, MB/s, and the
process's peak RSS; then the second run's seconds (every file a cache hit).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rlmx.corpus import ingest  # noqa: E402
from rlmx.store import open_store  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "state_union"


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kb * 1024 / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", default=[str(DEFAULT)], help="files, folders, globs")
    ap.add_argument("--keep", action="store_true", help="keep the temporary RLMX_HOME")
    ap.add_argument("--workers", type=int, default=None, help="parser processes (default: auto)")
    args = ap.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="rlmx-bench-"))
    try:
        store = open_store(home)
        t0 = time.perf_counter()
        corpus = ingest(args.paths, store, workers=args.workers)
        first = time.perf_counter() - t0
        size = sum(d.size_bytes for d in corpus.documents)
        size += sum(Path(f.source_path).stat().st_size for f in corpus.failures if Path(f.source_path).is_file())
        n_files = len(corpus.documents) + len(corpus.failures)
        mb = size / 1e6
        rss = _peak_rss_mb()
        t0 = time.perf_counter()
        again = ingest(args.paths, store, workers=args.workers)
        second = time.perf_counter() - t0
        assert again.corpus_id == corpus.corpus_id
        print(f"paths:        {' '.join(args.paths)}")
        print(f"files:        {n_files} ({len(corpus.documents)} documents, {len(corpus.failures)} failed)")
        print(f"size:         {mb:.2f} MB raw, {corpus.total_chars / 1e6:.2f} M characters")
        print(f"first run:    {first:.2f} s, {mb / first:.2f} MB/s")
        print(f"peak RSS:     {rss:.0f} MB")
        print(f"second run:   {second:.3f} s (cache hits), {mb / second:.1f} MB/s")
        store.close()
    finally:
        if args.keep:
            print(f"RLMX_HOME kept at {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
