"""The FTS5 keyword index: chunking, query building, BM25 search, read-only use."""

from __future__ import annotations

import itertools
import multiprocessing
import sqlite3
from pathlib import Path

from rlmx.corpus.index import CHUNK_CHARS, SearchIndex, chunk_spans, fts_query


def test_chunk_spans_cover_text_and_cut_at_whitespace() -> None:
    text = ("lorem ipsum dolor sit amet " * 40 + "\n") * 10
    spans = list(chunk_spans(text))
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (_, e1), (s2, _) in itertools.pairwise(spans):
        assert e1 == s2
    for s, e in spans[:-1]:
        assert e - s <= CHUNK_CHARS
        assert text[e - 1] in " \n"
    assert list(chunk_spans("")) == []
    assert list(chunk_spans("x" * 2500)) == [(0, 1000), (1000, 2000), (2000, 2500)]


def test_fts_query() -> None:
    assert fts_query("What is the launch code?") == '"launch" OR "code"'
    assert fts_query('find "exact phrase" here') == '"exact phrase" OR "find" OR "here"'
    assert fts_query("the of") == '"the" OR "of"'  # only stopwords: keep them
    assert fts_query("  ?! ") == ""
    assert fts_query("NEAR NOT") == '"near" OR "not"'  # FTS5 operators are quoted


def _index(tmp_path: Path) -> SearchIndex:
    idx = SearchIndex(tmp_path / "index.sqlite")
    idx.add("doc_a", "The launch code is 7-4-1.\n" + "filler text here. " * 100)
    idx.add("doc_b", "Nothing about codes.\nThe budget of the mission was large.\n")
    idx.add("doc_c", "Über café naïve résumé\n")
    return idx


def test_search_ranks_and_returns_spans(tmp_path: Path) -> None:
    idx = _index(tmp_path)
    rows = idx.search("launch code", k=5)
    assert rows and rows[0].doc_id == "doc_a"
    assert rows[0].start == 0 and rows[0].end > 0
    assert all(r.score >= rows[-1].score for r in rows)
    assert [r.doc_id for r in idx.search("budget mission")] == ["doc_b"]
    assert idx.search("budget", doc_ids=["doc_a"]) == []
    assert idx.search("cafe", k=1)[0].doc_id == "doc_c"  # diacritics folded
    assert idx.search("launch", k=0) == [] and idx.search("") == []
    idx.close()


def test_add_is_idempotent(tmp_path: Path) -> None:
    idx = _index(tmp_path)
    assert idx.has("doc_a") and not idx.has("doc_z")
    assert idx.add("doc_a", "The launch code") == 0
    assert len(idx.search("launch", k=10)) == 1
    assert idx.add_many([("doc_d", "one"), ("doc_e", "two")]) == 2
    idx.close()


def test_readonly(tmp_path: Path) -> None:
    _index(tmp_path).close()
    ro = SearchIndex(tmp_path / "index.sqlite", readonly=True)
    assert ro.search("launch")[0].doc_id == "doc_a"
    try:
        ro.add("doc_x", "new text")
        raise AssertionError("read-only index accepted a write")
    except sqlite3.OperationalError:
        pass
    ro.close()
    missing = SearchIndex(tmp_path / "nope.sqlite", readonly=True)
    assert missing.search("anything") == [] and not (tmp_path / "nope.sqlite").exists()


def _add_same(path: str, n: int) -> int:
    idx = SearchIndex(path)
    total = sum(idx.add(f"doc_{i}", f"shared text number {i} " * 300) for i in range(n))
    idx.close()
    return total


def test_concurrent_writers_index_each_doc_once(tmp_path: Path) -> None:
    path = str(tmp_path / "index.sqlite")
    SearchIndex(path).close()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = pool.starmap(_add_same, [(path, 20)] * 3)
    idx = SearchIndex(path)
    (chunks,) = idx._db.execute("SELECT COUNT(*) FROM chunks").fetchone()
    expected = sum(len(list(chunk_spans(f"shared text number {i} " * 300))) for i in range(20))
    assert chunks == expected == sum(results)
    idx.close()
