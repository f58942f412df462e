"""Ingestion benchmark: ingest a folder into a fresh, temporary RLMX_HOME, twice.

Usage: ``python benchmarks/ingest.py [--workers N] [--html [DIR]] [--big-text SIZE] [FOLDER ...]`` (default:
``../shared/data/state_union`` beside the project). Prints, for the first run: files,
documents, failures, megabytes read (raw bytes, MB = 10^6), seconds, MB/s, and the peak
RSS of this process and of the parser worker processes; then the second run's seconds
(every file a cache hit).

``--html`` first turns every text file of the folders into an HTML page (a ``<head>``,
navigation, a header, one ``<p>`` per paragraph, a sidebar and a footer of boilerplate,
as a web page saved from a site would have) in a temporary folder, and ingests those
pages instead: the HTML parser extracts the main content. ``--html DIR`` ingests the real
HTML pages under ``DIR`` instead (e.g. a Debian documentation package unpacked with
``dpkg -x``).

``--big-text SIZE`` (``300M``, ``1G``; MB = 10^6) writes one UTF-8 plain-text file of that
size under the system's temporary folder (the text files of ``../shared/data`` repeated,
decoded to UTF-8; removed afterwards) and ingests it: large files are streamed in blocks,
so peak RSS stays far below the file's size. The stored text's checksum is compared with
one computed by the benchmark itself while it writes the file.
"""

from __future__ import annotations

import argparse
import hashlib
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

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="/static/site.css"><script src="/static/analytics.js"></script></head>
<body><nav class="menu"><ul><li><a href="/">Home</a></li><li><a href="/speeches">Speeches</a></li>
<li><a href="/presidents">Presidents</a></li><li><a href="/about">About</a></li></ul></nav>
<header><h1>{title}</h1><p class="byline">Transcript, archived collection</p></header>
<main><article>
{body}
</article></main>
<aside class="sidebar"><h2>Related</h2><ul><li><a href="/a">Another address</a></li>
<li><a href="/b">Press releases</a></li></ul></aside>
<footer><p>Copyright the archive. All rights reserved.</p><a href="/privacy">Privacy</a></footer>
</body></html>
"""


def make_html(paths: list[str], folder: Path) -> list[str]:
    """Write an HTML page for every ``.txt`` file under ``paths`` into ``folder``."""
    import html

    folder.mkdir(parents=True, exist_ok=True)
    for p in paths:
        root = Path(p)
        files = sorted(root.rglob("*.txt")) if root.is_dir() else [root]
        for f in files:
            raw = f.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            paras = [" ".join(x.split()) for x in text.split("\n\n") if x.strip()]
            body = "\n".join(f"<p>{html.escape(x)}</p>" for x in paras)
            page = _PAGE.format(title=html.escape(f.stem), body=body)
            (folder / f"{f.stem}.html").write_text(page, encoding="utf-8")
    return [str(folder)]


def make_big_text(size: int, folder: Path) -> list[str]:
    """One UTF-8 ``.txt`` file of at least ``size`` bytes made of the shared data's texts."""
    from rlmx.corpus.parsers.encoding import decode_text

    data = ROOT.parent / "shared" / "data"
    parts = [decode_text(f.read_bytes())[0] for f in sorted(data.rglob("*.txt"))]
    text = "\n\n".join(parts).replace("\r", "") + "\n"  # repeats cut after a newline
    block = text.encode("utf-8")
    from rlmx.corpus.canonical import canonicalize

    canonical = canonicalize(text).encode("utf-8")
    reference = hashlib.sha256()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "big.txt"
    with path.open("wb") as f:
        written = 0
        while written < size:
            f.write(block)
            reference.update(canonical)
            written += len(block)
    BIG_TEXT_REFERENCE[str(path)] = reference.hexdigest()
    return [str(path)]


BIG_TEXT_REFERENCE: dict[str, str] = {}
"""sha256 of each generated file's canonical text, computed here block by block."""


def _size(text: str) -> int:
    units = {"K": 10**3, "M": 10**6, "G": 10**9}
    text = text.strip().upper().rstrip("B")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1:] in units else int(text)


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    kb = resource.getrusage(who).ru_maxrss  # KiB on Linux
    return kb * 1024 / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", default=[str(DEFAULT)], help="files, folders, globs")
    ap.add_argument("--keep", action="store_true", help="keep the temporary RLMX_HOME")
    ap.add_argument("--workers", type=int, default=None, help="parser processes (default: auto)")
    ap.add_argument(
        "--html",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="ingest HTML pages made from the text files, or the real pages under DIR",
    )
    ap.add_argument("--big-text", metavar="SIZE", help="ingest one generated plain-text file of SIZE (1G, 300M)")
    args = ap.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="rlmx-bench-"))
    try:
        if args.big_text:
            args.paths = make_big_text(_size(args.big_text), home / "big")
        elif args.html:
            args.paths = [args.html]
        elif args.html is not None:
            args.paths = make_html(args.paths, home / "html")
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
        for d in corpus.documents:
            if d.source_path in BIG_TEXT_REFERENCE:
                ok = d.text_sha256 == BIG_TEXT_REFERENCE[d.source_path]
                print(f"checksum:     text_sha256 {'matches' if ok else 'DIFFERS FROM'} the reference")
                if not ok:
                    return 1
        print(f"paths:        {' '.join(args.paths)}")
        print(f"files:        {n_files} ({len(corpus.documents)} documents, {len(corpus.failures)} failed)")
        print(f"size:         {mb:.2f} MB raw, {corpus.total_chars / 1e6:.2f} M characters")
        print(f"first run:    {first:.2f} s, {mb / first:.2f} MB/s")
        workers = _peak_rss_mb(resource.RUSAGE_CHILDREN)
        extra = f", {workers:.0f} MB (largest worker)" if workers else ""
        print(f"peak RSS:     {rss:.0f} MB (this process){extra}")
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
