"""A corpus, not a dump (issue 13 item 5): a documentation folder's assets are skipped by
default (one list of rules, each with its reason), exact duplicates are stored once with
their other names as aliases, and the summary says so — in the API, the CLI and the
session API; ``include`` / ``exclude`` override; a file named by its path is never skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlmx.corpus import context_spec, ingest
from rlmx.corpus.filter import EXCLUDED, SKIP_RULES, select, skip_reason
from rlmx.store import open_store
from service_support import auth, client, make_service, ready_session

PAGE = "<html><head><title>{t}</title></head><body><h1>{t}</h1><p>{t} explains the frobnicator.</p></body></html>"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A built Sphinx-like site: 3 pages (one an exact copy), a Markdown note, and assets."""
    root = tmp_path / "html"
    for sub in ("_static/fonts", "_static/img", "_sources", "api"):
        (root / sub).mkdir(parents=True)
    (root / "index.html").write_text(PAGE.format(t="Welcome"), encoding="utf-8")
    (root / "api" / "index.html").write_text(PAGE.format(t="API"), encoding="utf-8")
    (root / "api" / "copy.html").write_text(PAGE.format(t="API"), encoding="utf-8")  # same bytes
    (root / "notes.md").write_text("# Notes\n\nA note.\n", encoding="utf-8")
    (root / "_sources" / "index.rst.txt").write_text("Welcome\n=======\n", encoding="utf-8")
    (root / "_static" / "doctools.js").write_text("var x = 1;", encoding="utf-8")
    (root / "_static" / "basic.css").write_text("body { margin: 0 }", encoding="utf-8")
    (root / "_static" / "basic.css.map").write_text("{}", encoding="utf-8")
    (root / "_static" / "fonts" / "x.woff2").write_bytes(b"wOF2\0\0")
    (root / "_static" / "img" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "searchindex.js").write_text("Search.setIndex({})", encoding="utf-8")
    (root / "package-lock.json").write_text("{}", encoding="utf-8")
    (root / "broken.pdf").write_bytes(b"not a pdf")
    return root


EXPECTED_SKIPPED = {
    "script": 1,
    "stylesheet": 1,
    "source map": 1,
    "font": 1,
    "image": 1,
    "search index": 1,
    "lock file": 1,
    "Sphinx page source copy": 1,
}


def test_skip_rules_are_one_list_with_reasons():
    reasons = {r.reason for r in SKIP_RULES}
    assert set(EXPECTED_SKIPPED) <= reasons
    assert skip_reason("searchindex.js") == "search index"  # before the script rule
    assert skip_reason("a/_sources/page.rst.txt") == "Sphinx page source copy"
    assert skip_reason("guide/intro.md") is None and skip_reason("mod.py") is None
    assert select("x.js", include=["*.js"]) is None
    assert select("guide.md", exclude=["guide.*"]) == EXCLUDED
    assert select("a/b.js", include=["a/*"], exclude=["**/b.js"]) == EXCLUDED  # exclude wins


def test_folder_yields_exactly_the_documents_and_the_summary(site: Path, tmp_path: Path):
    store = open_store(tmp_path / "home")
    corpus = ingest([site], store)
    assert [d.name for d in corpus.documents] == ["api/copy.html", "index.html", "notes.md"]
    kept = corpus.documents[0]
    assert kept.meta["aliases"] == ["api/index.html"]
    s = corpus.summary()
    assert s["kept"] == 3 and s["duplicates"] == 1
    assert sorted(s["skipped"].items()) == sorted(EXPECTED_SKIPPED.items())
    assert s["aliases"] == {"api/copy.html": ["api/index.html"]}
    assert list(s["failed"]) and sum(s["failed"].values()) == 1
    assert [f.source_path for f in corpus.failures] == [str(site / "broken.pdf")]
    # the REPL view: names stay the kept names, aliases in meta; the index holds 3 documents
    spec = context_spec(corpus, store)
    assert [d.name for d in spec.docs] == ["api/copy.html", "index.html", "notes.md"]
    assert spec.docs[0].meta["aliases"] == ["api/index.html"]
    from rlmx.corpus.index import SearchIndex

    idx = SearchIndex(Path(spec.index_path), readonly=True)
    try:
        hits = {h.doc_id for h in idx.search("frobnicator", k=20)}
    finally:
        idx.close()
    assert hits <= {d.doc_id for d in corpus.documents}
    # stored once: the corpus read back has the same 3 documents
    assert len(store.meta.get_corpus(corpus.corpus_id).documents) == 3


def test_include_and_exclude_override(site: Path, tmp_path: Path):
    store = open_store(tmp_path / "home")
    corpus = ingest([site], store, include=["*.js", "_sources"], exclude=["notes.md"])
    names = [d.name for d in corpus.documents]
    assert "_static/doctools.js" in names and "searchindex.js" in names and "_sources/index.rst.txt" in names
    assert "notes.md" not in names
    skipped = corpus.summary()["skipped"]
    assert skipped[EXCLUDED] == 1 and "script" not in skipped and "search index" not in skipped


def test_explicit_paths_and_globs_naming_a_kind_are_never_skipped(site: Path, tmp_path: Path):
    store = open_store(tmp_path / "home")
    corpus = ingest([site / "searchindex.js", site / "_static" / "basic.css"], store)
    assert sorted(d.name for d in corpus.documents) == ["basic.css", "searchindex.js"]
    assert corpus.skipped == []
    corpus = ingest([str(site / "_static" / "*.css")], store)  # the glob asks for stylesheets
    assert [d.name for d in corpus.documents] == ["basic.css"]
    corpus = ingest([str(site / "**" / "*")], store)  # a broad glob is filtered
    assert "searchindex.js" not in [d.name for d in corpus.documents]
    assert corpus.summary()["skipped"]["search index"] == 1


def test_only_skipped_files_is_a_clear_error(tmp_path: Path):
    from rlmx.errors import IngestError

    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "a.js").write_text("x", encoding="utf-8")
    with pytest.raises(IngestError, match=r"skipped as not documents.*--include"):
        ingest([tmp_path / "assets"], open_store(tmp_path / "home"))


def _rlmx(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RLMX_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "rlmx.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_cli_ingest_prints_the_summary_and_takes_include_exclude(site: Path, tmp_path: Path):
    proc = _rlmx("ingest", str(site), home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    assert "corpus cor_" in proc.stdout and "searchindex.js" not in proc.stdout
    line = next(x for x in proc.stderr.splitlines() if x.startswith("ingested "))
    assert line.startswith("ingested 3 documents; skipped 8 (") and "search index 1" in line
    assert "; 1 duplicates; failed 1 (" in line
    assert "duplicate text: api/copy.html = api/index.html" in proc.stderr
    proc = _rlmx("ingest", str(site), "--include", "*.css", "--exclude", "*.html", home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    assert "_static/basic.css" in proc.stdout and "index.html" not in proc.stdout
    assert "excluded by a pattern 3" in proc.stderr


def test_session_api_include_exclude_and_summary(site: Path, tmp_path: Path):
    svc = make_service(tmp_path / "svc", allowed_paths=str(site))
    try:
        k, _ = svc.keys.create("acme")
        with client(svc) as c:
            s = ready_session(c, auth(k), [{"path": str(site)}])
            assert s["status"] == "READY" and s["n_documents"] == 3 and s["n_failed"] == 1
            assert s["summary"]["kept"] == 3 and s["summary"]["duplicates"] == 1
            assert sorted(s["summary"]["skipped"].items()) == sorted(EXPECTED_SKIPPED.items())
            assert s["summary"]["aliases"] == {"api/copy.html": ["api/index.html"]}
            ready = [d for d in s["documents"] if d["status"] == "READY"]
            assert [d.get("aliases") for d in ready] == [["api/index.html"], None, None]
            r = c.post(
                "/v1/sessions",
                json={"docs": [{"path": str(site)}], "include": ["*.js"], "exclude": ["*.md"]},
                headers=auth(k),
            )
            assert r.status_code == 202, r.text
            sid = r.json()["session_id"]
            from service_support import wait_for

            s2 = wait_for(
                lambda: (x := c.get(f"/v1/sessions/{sid}", headers=auth(k)).json())["status"] != "CREATING" and x,
                "session",
            )
            names = {d.get("name") for d in s2["documents"] if d["status"] == "READY"}
            assert "searchindex.js" in names and "_static/doctools.js" in names and "notes.md" not in names
            assert s2["summary"]["skipped"][EXCLUDED] == 1
            bad = c.post("/v1/sessions", json={"docs": [{"path": str(site)}], "include": [""]}, headers=auth(k))
            assert bad.status_code == 422
    finally:
        svc.close()
