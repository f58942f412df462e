"""Keyword-search benchmark: per-corpus FTS5 index blobs vs one store-wide FTS5 file (vs
PostgreSQL full-text search with ``--postgres``). The figures in ``docs/search.md``.

Usage: ``python benchmarks/search_index.py [--repeat N] [--postgres] [--stdlib-limit N]``

Corpora: ``../shared/data/state_union`` (65 addresses) and the Python standard library's
``.py`` files (``sysconfig.get_path("stdlib")``, ``site-packages`` left out: about 1,800
files). Each is ingested into a fresh temporary store (which builds its index blob
``index/v1/<corpus_id>.fts5``). Then, per corpus:

* ``per-corpus``: the index blob — build time (texts from the blob store → sealed bytes),
  size, and the latency of a ``search`` request as the orchestrator answers it
  (:class:`rlmx.engine.resolver.ContextSearch`: open, BM25 restricted to the context's doc
  ids, close), median and p95 over the queries x ``--repeat``;
* ``store-wide``: today's layout before the change, one WAL-mode ``index.sqlite`` holding
  *both* corpora (the corpus's own share of the build time and the file size are shown), the
  same requests answered from it;
* ``postgres`` (optional): a ``tsvector`` column (``to_tsvector('english', body)``) with a
  GIN index, ``ts_rank`` ordering, restricted by ``doc_id = ANY(...)``; build time (insert +
  index), size (``pg_total_relation_size``), latency (one pooled connection, no open cost).

Times are wall-clock seconds (builds) and milliseconds (queries) on this machine; sizes in
MB (10^6 bytes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rlmx.corpus import context_spec, ingest  # noqa: E402
from rlmx.corpus.corpus_index import IndexBuilder, index_key  # noqa: E402
from rlmx.corpus.index import SearchIndex, chunk_spans, fts_query  # noqa: E402
from rlmx.engine.resolver import ContextSearch  # noqa: E402
from rlmx.store import Store, open_store  # noqa: E402
from rlmx.store.base import CorpusRecord  # noqa: E402

STATE_UNION = ROOT.parent / "shared" / "data" / "state_union"
QUERIES = {
    "state_union": [
        "Marshall Plan",
        "atomic bomb",
        "inflation and unemployment",
        '"civil rights"',
        "tax cuts for families",
        "Soviet Union arms control",
        "balanced budget deficit",
        "energy crisis oil imports",
        "health insurance for the elderly",
        "war on poverty",
        "terrorism homeland security",
        "farm prices agriculture",
    ],
    "stdlib": [
        "Which exception does shutil.copytree raise when copying fails?",
        "socket timeout",
        "deprecated since version",
        "UnicodeDecodeError",
        "thread lock acquire release",
        '"raise ValueError"',
        "parse command line arguments",
        "temporary directory cleanup",
        "http request headers",
        "regular expression compile flags",
        "asyncio event loop",
        "zipfile compression",
    ],
}


def _stdlib_files(limit: int | None) -> list[Path]:
    root = Path(sysconfig.get_path("stdlib"))
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and p.is_file())
    return files[:limit] if limit else files


def _ms(samples: list[float]) -> tuple[float, float]:
    xs = sorted(samples)
    return statistics.median(xs) * 1000, xs[min(len(xs) - 1, int(0.95 * len(xs)))] * 1000


def _latency(fn: Callable[[str], Any], queries: list[str], repeat: int) -> tuple[float, float, int]:
    samples, hits = [], 0
    for _ in range(repeat):
        for q in queries:
            t0 = time.perf_counter()
            rows = fn(q)
            samples.append(time.perf_counter() - t0)
            hits += len(rows or [])
    return (*_ms(samples), hits)


def _texts(store: Store, corpus: CorpusRecord) -> list[tuple[str, str]]:
    return [(d.doc_id, store.blobs.get(d.text_key).decode("utf-8")) for d in corpus.documents]


def _per_corpus(store: Store, corpus: CorpusRecord, queries: list[str], repeat: int) -> dict[str, Any]:
    texts = _texts(store, corpus)
    t0 = time.perf_counter()
    with IndexBuilder() as b:
        for doc_id, text in texts:
            b.add(doc_id, text)
        data = b.finish(corpus.corpus_id)
    build = time.perf_counter() - t0
    spec = context_spec(corpus, store)
    search = ContextSearch(spec)
    med, p95, hits = _latency(lambda q: search({"query": q, "k": 10}), queries, repeat)
    assert store.blobs.exists(index_key(corpus.corpus_id))  # built by ingest() already
    return {"build_s": build, "mb": len(data) / 1e6, "median_ms": med, "p95_ms": p95, "hits": hits, "spec": spec}


def _store_wide(
    path: Path, parts: list[tuple[Store, CorpusRecord]], queries: dict[str, list[str]], repeat: int
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    index = SearchIndex(path)
    for name, (store, corpus) in zip(queries, parts, strict=True):
        t0 = time.perf_counter()
        index.add_many(_texts(store, corpus))
        out[name] = {"build_s": time.perf_counter() - t0}
    index.close()
    size = path.stat().st_size / 1e6
    for name, (store, corpus) in zip(queries, parts, strict=True):
        spec = context_spec(corpus, store).model_copy(update={"index_path": str(path)})
        search = ContextSearch(spec)
        med, p95, hits = _latency(lambda q, s=search: s({"query": q, "k": 10}), queries[name], repeat)
        out[name].update(mb=size, median_ms=med, p95_ms=p95, hits=hits)
    return out


def _postgres(
    folder: Path, parts: list[tuple[Store, CorpusRecord]], queries: dict[str, list[str]], repeat: int
) -> dict[str, dict[str, Any]]:
    import psycopg

    from rlmx.dev.postgres import LocalPostgres

    pg = LocalPostgres()
    url = pg.start(folder).replace("postgresql+psycopg://", "postgresql://")
    out: dict[str, dict[str, Any]] = {}
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for name, (store, corpus) in zip(queries, parts, strict=True):
                table = f"chunks_{name}"
                conn.execute(
                    f"CREATE TABLE {table} (id bigserial PRIMARY KEY, doc_id text NOT NULL, "
                    'start integer NOT NULL, "end" integer NOT NULL, tsv tsvector NOT NULL)'
                )
                t0 = time.perf_counter()
                with conn.transaction(), conn.cursor() as cur:
                    rows = [
                        (doc_id, s, e, text[s:e].replace("\x00", " "))
                        for doc_id, text in _texts(store, corpus)
                        for s, e in chunk_spans(text)
                    ]
                    cur.executemany(
                        f'INSERT INTO {table} (doc_id, start, "end", tsv) '
                        "VALUES (%s, %s, %s, to_tsvector('english', %s))",
                        rows,
                    )
                conn.execute(f"CREATE INDEX ON {table} USING gin (tsv)")
                conn.execute(f"ANALYZE {table}")
                build = time.perf_counter() - t0
                size = conn.execute(f"SELECT pg_total_relation_size('{table}')").fetchone()[0] / 1e6  # type: ignore[index]
                ids = [d.doc_id for d in corpus.documents]

                def run(q: str, table: str = table, ids: list[str] = ids) -> list[Any]:
                    terms = fts_query(q).replace('"', "").split(" OR ")
                    tsq = " | ".join("(" + " <-> ".join(t.split()) + ")" for t in terms if t)
                    if not tsq:
                        return []
                    return conn.execute(
                        f'SELECT doc_id, start, "end", ts_rank(tsv, query) AS score FROM {table}, '
                        "to_tsquery('english', %s) query WHERE tsv @@ query AND doc_id = ANY(%s) "
                        "ORDER BY score DESC, doc_id, start LIMIT 10",
                        (tsq, ids),
                    ).fetchall()

                med, p95, hits = _latency(run, queries[name], repeat)
                out[name] = {"build_s": build, "mb": size, "median_ms": med, "p95_ms": p95, "hits": hits}
    finally:
        pg.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--repeat", type=int, default=20, help="passes over the queries per corpus and method")
    ap.add_argument("--postgres", action="store_true", help="also measure PostgreSQL tsvector/ts_rank")
    ap.add_argument("--stdlib-limit", type=int, default=None, help="use only the first N stdlib files")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="rlmx-search-bench-", dir="/tmp"))
    os.chmod(tmp, 0o755)  # the PostgreSQL server runs as its own user
    sources = {"state_union": [STATE_UNION], "stdlib": _stdlib_files(args.stdlib_limit)}
    parts: list[tuple[Store, CorpusRecord]] = []
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name, paths in sources.items():
        store = open_store(tmp / f"home-{name}")
        t0 = time.perf_counter()
        corpus = ingest(paths, store)
        ingest_s = time.perf_counter() - t0
        chars = corpus.total_chars
        print(
            f"{name}: {len(corpus.documents)} documents, {chars / 1e6:.1f} M characters, ingested in {ingest_s:.2f} s"
        )
        parts.append((store, corpus))
        results[name] = {"per-corpus": _per_corpus(store, corpus, QUERIES[name], args.repeat)}
    for name, r in _store_wide(tmp / "index.sqlite", parts, QUERIES, args.repeat).items():
        results[name]["store-wide"] = r
    if args.postgres:
        for name, r in _postgres(tmp / "pg", parts, QUERIES, args.repeat).items():
            results[name]["postgres"] = r
    print(f"\n{'corpus':<12} {'method':<11} {'build s':>8} {'size MB':>8} {'median ms':>10} {'p95 ms':>8} {'hits':>6}")
    for name, methods in results.items():
        for method, r in methods.items():
            print(
                f"{name:<12} {method:<11} {r['build_s']:>8.2f} {r['mb']:>8.1f} "
                f"{r['median_ms']:>10.2f} {r['p95_ms']:>8.2f} {r['hits']:>6}"
            )
    for store, _ in parts:
        store.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
