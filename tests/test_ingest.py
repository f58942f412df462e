"""Ingestion end to end: real corpora, cache hits, failures, globs, in-memory texts."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlmx.corpus import TextReader, context_spec, corpus_from_texts, ingest
from rlmx.corpus.corpus_index import ensure_index, index_key
from rlmx.corpus.ids import corpus_id_for, doc_id_for
from rlmx.corpus.index import SearchIndex
from rlmx.corpus.parsers import HtmlParser, ParsedText, Parser, ParserRegistry, default_registry
from rlmx.corpus.parsers.text import PlainTextParser
from rlmx.errors import IngestError
from rlmx.store import Store, open_store
from rlmx.store.base import DocumentRecord
from rlmx.types import span_checksum

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
STATE_UNION = DATA / "state_union"
LEGACY = {
    "1954-Eisenhower.txt": ("½¢", {"iso-8859-1"}),
    "1970-Nixon.txt": ("man’s genius", {"cp950"}),
    "1971-Nixon.txt": ("“", {"cp950"}),
    "1972-Nixon.txt": ("’", {"cp950"}),
    "1973-Nixon.txt": ("—", {"cp950"}),
    "1974-Nixon.txt": ("world’s people", {"cp950"}),
}

needs_data = pytest.mark.skipif(not STATE_UNION.is_dir(), reason="../shared/data not present")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("RLMX_HOME", str(tmp_path / "home"))
    s = open_store()
    yield s
    s.close()


class CountingText(PlainTextParser):
    """Plain text parser that counts its calls (evidence of cache hits)."""

    calls = 0

    def parse(self, data: bytes, path: Path) -> ParsedText:
        type(self).calls += 1
        return super().parse(data, path)


def _counting_registry() -> tuple[ParserRegistry, type[CountingText]]:
    reg = default_registry()
    CountingText.calls = 0
    reg.register(CountingText(), [".txt", ""])
    return reg, CountingText


def _read(store: Store, doc: DocumentRecord) -> str:
    spec = context_spec_for(store, doc)
    reader = TextReader(spec[0], doc.length_chars, spec[1])
    try:
        return reader[0 : len(reader)]
    finally:
        reader.close()


def context_spec_for(store: Store, doc: DocumentRecord) -> tuple[Path, Path | None]:
    text = store.blobs.local_path(doc.text_key)
    idx = store.blobs.local_path(doc.index_key) if doc.index_key else None
    return text, idx


@needs_data
def test_state_union_with_legacy_encodings(store: Store) -> None:
    progress: list[tuple[str, int, int]] = []
    corpus = ingest([STATE_UNION], store, on_progress=lambda p, i, n: progress.append((p, i, n)))
    files = sorted(p.name for p in STATE_UNION.iterdir() if not p.name.startswith("."))
    assert [d.name for d in corpus.documents] == files
    assert corpus.failures == []
    assert progress[0] == ("", 0, len(files))  # once listed, then after each file
    assert len(progress) == len(files) + 1 and progress[-1][1:] == (len(files), len(files))
    by_name = {d.name: d for d in corpus.documents}
    for name, (needle, encodings) in LEGACY.items():
        doc = by_name[name]
        assert doc.encoding in encodings, (name, doc.encoding)
        text = _read(store, doc)
        assert needle in text, name
        assert "¡¦" not in text  # the cp950 quotes are not read as Latin-1 mojibake
        assert doc.index_key is not None
    ascii_docs = [d for d in corpus.documents if d.name not in LEGACY]
    assert {d.encoding for d in ascii_docs} == {"ascii"}
    assert all(d.index_key is None for d in ascii_docs)
    doc = by_name["1945-Truman.txt"]
    raw = (STATE_UNION / "1945-Truman.txt").read_bytes()
    assert doc.size_bytes == len(raw) and doc.media_type == "text/plain"
    assert doc.source_path == os.path.abspath(STATE_UNION / "1945-Truman.txt")
    assert doc.doc_id == doc_id_for(doc.raw_sha256, "text", doc.parser_version)
    text = _read(store, doc)
    assert text == raw.decode().replace("\r\n", "\n") and len(text) == doc.length_chars
    assert span_checksum(text) == "sha256:" + doc.text_sha256
    # searchable
    idx = SearchIndex(ensure_index(corpus, store), readonly=True, immutable=True)
    hits = idx.search("atomic bomb", k=3)
    assert hits and all(h.doc_id in {d.doc_id for d in corpus.documents} for h in hits)
    idx.close()
    assert store.meta.get_corpus(corpus.corpus_id) == corpus


@needs_data
def test_reingest_is_a_cache_hit(store: Store) -> None:
    reg, counter = _counting_registry()
    first = ingest([STATE_UNION], store, registry=reg)
    parsed = counter.calls
    assert parsed == len(first.documents)
    index_file = store.blobs.local_path(index_key(first.corpus_id))
    before = index_file.stat()
    second = ingest([str(STATE_UNION)], store, registry=reg)
    assert counter.calls == parsed  # nothing parsed again
    assert second.corpus_id == first.corpus_id
    assert [d.created_at for d in second.documents] == [d.created_at for d in first.documents]
    after = index_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # nothing indexed again


def test_cache_recovers_from_missing_blob_and_index(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("Ünïcode text about zebras\n")
    reg, counter = _counting_registry()
    first = ingest([src], store, registry=reg)
    doc = first.documents[0]
    store.blobs.delete(doc.text_key)
    store.blobs.delete(index_key(first.corpus_id))
    second = ingest([src], store, registry=reg)
    assert counter.calls == 2  # the blob was gone: parsed again
    assert store.blobs.exists(second.documents[0].text_key)
    key = index_key(second.corpus_id)
    assert SearchIndex(store.blobs.local_path(key), readonly=True).search("zebras")[0].doc_id == doc.doc_id
    store.blobs.delete(key)
    ingest([src], store, registry=reg)
    assert counter.calls == 2  # only the index was gone: re-indexed from the blob
    assert SearchIndex(store.blobs.local_path(key), readonly=True).search("zebras")[0].doc_id == doc.doc_id


def test_folder_with_good_and_bad_files(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    (root / "sub").mkdir(parents=True)
    (root / "good.txt").write_text("hello world\n")
    (root / "sub" / "notes.md").write_text("# Notes\n\nSome notes.\n")
    (root / "code.py").write_text("print('hi')\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "binary.dat").write_bytes(b"\x00\x01\x02" * 50)
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    (root / "image.png").write_bytes(b"\x89PNG\r\n")
    (root / ".hidden.txt").write_text("secret")
    for skipped in (".git", "__pycache__", "node_modules"):
        (root / skipped).mkdir()
        (root / skipped / "x.txt").write_text("skip me")
    corpus = ingest([root], store)
    assert [d.name for d in corpus.documents] == ["code.py", "good.txt", "sub/notes.md"]
    reasons = {Path(f.source_path).name: f.reason for f in corpus.failures}
    assert set(reasons) == {"empty.txt", "binary.dat", "broken.pdf"}
    assert "empty" in reasons["empty.txt"] and "binary" in reasons["binary.dat"]
    assert "corrupt PDF" in reasons["broken.pdf"]
    assert [(Path(s.source_path).name, s.reason) for s in corpus.skipped] == [("image.png", "image")]
    md = next(d for d in corpus.documents if d.name == "sub/notes.md")
    assert md.parser == "markdown" and md.meta["title"] == "Notes"
    assert store.meta.get_corpus(corpus.corpus_id).failures == corpus.failures


def test_folder_walk_stays_inside_the_folder(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "secret.txt").write_text("outside secret\n")
    (outside / "deep" / "more.txt").write_text("more outside\n")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("inside a\n")
    (root / "sub" / "b.txt").write_text("inside b\n")
    os.symlink(outside / "secret.txt", root / "escape.txt")
    os.symlink(outside / "deep", root / "escape_dir")
    os.symlink("../../outside/secret.txt", root / "sub" / "relative.txt")
    os.symlink(root / "sub" / "b.txt", root / "inner_link.txt")  # inside: kept
    os.symlink(root / "sub", root / "inner_dir")  # inside: walked once, through its real path
    os.symlink(root / "missing.txt", root / "broken.txt")
    os.mkfifo(root / "fifo.txt")
    os.symlink(root / "fifo.txt", root / "fifo_link.txt")
    os.symlink("/dev/zero", root / "zero.txt")
    corpus = ingest([root], store)
    assert [d.name for d in corpus.documents] == ["a.txt", "inner_link.txt"]  # sub/b.txt: same text
    assert corpus.documents[1].meta["aliases"] == ["sub/b.txt"]
    reasons = {Path(f.source_path).name: f.reason for f in corpus.failures}
    for name in ("escape.txt", "escape_dir", "relative.txt", "zero.txt"):
        assert "outside the folder" in reasons[name], name
    assert "broken" in reasons["broken.txt"]
    assert "not a regular file" in reasons["fifo.txt"] and "not a regular file" in reasons["fifo_link.txt"]
    assert set(reasons) == {
        "escape.txt",
        "escape_dir",
        "relative.txt",
        "zero.txt",
        "broken.txt",
        "fifo.txt",
        "fifo_link.txt",
    }
    # a root reached through a symlink is walked as usual
    link = tmp_path / "link_to_root"
    os.symlink(root, link)
    via = ingest([link], store)
    assert [d.name for d in via.documents] == ["a.txt", "inner_link.txt"]  # sub/b.txt: same text
    # a file named directly is taken as given (the user chose it)
    assert [d.name for d in ingest([root / "escape.txt"], store).documents] == ["escape.txt"]


def test_globs_single_files_and_missing_paths(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "guide").mkdir(parents=True)
    (root / "guide" / "intro.md").write_text("# Intro\n")
    (root / "guide" / "setup.md").write_text("# Setup\n")
    (root / "other.txt").write_text("other\n")
    corpus = ingest([f"{root}/**/*.md"], store)
    assert [d.name for d in corpus.documents] == ["guide/intro.md", "guide/setup.md"]
    single = ingest([root / "other.txt", tmp_path / "missing.txt", f"{root}/*.nothing"], store)
    assert [d.name for d in single.documents] == ["other.txt"]
    reasons = [f.reason for f in single.failures]
    assert any("no such file" in r for r in reasons) and any("glob" in r for r in reasons)


def test_nothing_ingested_raises(store: Store, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(IngestError, match=r"nothing could be ingested.*empty file.*supported"):
        ingest([tmp_path / "empty.txt", tmp_path / "nope"], store)
    with pytest.raises(IngestError):
        ingest([], store)


def test_same_content_different_names(store: Store, tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "README.md").write_text("# Same\n")
    one = ingest([tmp_path / "a"], store)
    both = ingest([tmp_path / "a", tmp_path / "b"], store)
    assert [d.name for d in both.documents] == ["README.md"]  # the same text is stored once
    assert both.documents[0].meta["aliases"] == ["b/README.md"]
    assert [(d.name, d.kept_name) for d in both.duplicates] == [("b/README.md", "README.md")]
    assert both.corpus_id == one.corpus_id  # the aliases are not part of the corpus id
    assert both.corpus_id == corpus_id_for(both.documents)
    assert store.meta.get_corpus(one.corpus_id).documents[0].name == "README.md"


def test_corpus_from_texts_and_context_spec(store: Store) -> None:
    single = corpus_from_texts("Le café\r\nest fermé.", store)
    spec = context_spec(single, store)
    assert spec.kind == "text" and len(spec.docs) == 1
    doc = spec.docs[0]
    assert doc.name == "text" and doc.length == len("Le café\nest fermé.")
    reader = TextReader(doc.text_path, doc.length, doc.index_path)
    assert reader[0 : doc.length] == "Le café\nest fermé."
    reader.close()
    assert spec.index_path == str(store.blobs.local_path(index_key(single.corpus_id)))

    many = corpus_from_texts(["alpha", "beta"], store)
    assert [d.name for d in many.documents] == ["text_0", "text_1"]
    assert context_spec(many, store).kind == "corpus"
    named = corpus_from_texts({"b.txt": "beta", "a.txt": "alpha"}, store)
    assert [d.name for d in named.documents] == ["b.txt", "a.txt"]
    assert named.documents[1].doc_id == many.documents[0].doc_id  # content-addressed
    assert corpus_from_texts(["alpha", "beta"], store).corpus_id == many.corpus_id
    assert all(d.parser == "inline" and d.media_type == "text/plain" for d in many.documents)
    with pytest.raises(IngestError):
        corpus_from_texts([], store)
    with pytest.raises(TypeError):
        corpus_from_texts([b"bytes"], store)


@needs_data
def test_context_spec_for_files(store: Store) -> None:
    corpus = ingest([STATE_UNION / "1970-Nixon.txt", STATE_UNION / "1945-Truman.txt"], store)
    spec = context_spec(corpus, store)
    assert spec.kind == "corpus"
    nixon = next(d for d in spec.docs if d.name == "1970-Nixon.txt")
    assert nixon.index_path is not None and Path(nixon.text_path).is_file()
    assert nixon.meta["source_path"].endswith("1970-Nixon.txt")
    reader = TextReader(nixon.text_path, nixon.length, nixon.index_path)
    assert "man’s genius" in reader[0 : nixon.length]
    reader.close()


class _Boom(Parser):
    name = "boom"
    version = "1"

    def parse(self, data: bytes, path: Path) -> ParsedText:
        raise RuntimeError("parser bug")


def test_parser_crash_is_a_failure(store: Store, tmp_path: Path) -> None:
    (tmp_path / "x.boom").write_text("data")
    (tmp_path / "y.txt").write_text("fine")
    reg = default_registry()
    reg.register(_Boom(), [".boom"])
    corpus = ingest([tmp_path], store, registry=reg)
    assert [d.name for d in corpus.documents] == ["y.txt"]
    assert "RuntimeError: parser bug" in corpus.failures[0].reason


def test_importing_the_corpus_package_stays_light() -> None:
    """The REPL process imports rlmx.corpus (for canonical and index): no pydantic,
    SQLAlchemy or parser library may load with it; ``rlmx.corpus.ingest`` is the function."""
    import subprocess
    import sys

    import rlmx

    pkg_dir = Path(str(rlmx.__file__)).parent
    heavy = (
        "pydantic",
        "sqlalchemy",
        "pypdf",
        "docx",
        "trafilatura",
        "markdown_it",
        "lxml",
        "charset_normalizer",
    )
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('rlmx'); pkg.__path__ = [{str(pkg_dir)!r}]\n"
        "sys.modules['rlmx'] = pkg\n"
        "import rlmx.corpus\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules), callable(rlmx.corpus.ingest))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] True"


def _parallel_folder(tmp_path: Path) -> Path:
    from test_parsers import make_docx, make_pdf

    root = tmp_path / "par"
    root.mkdir()
    for i in range(5):
        (root / f"doc{i}.pdf").write_bytes(make_pdf([f"Page {i} of the pdf, café.", "Second page."]))
    (root / "report.docx").write_bytes(make_docx())
    (root / "notes.txt").write_text("plain notes\n")
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 broken")
    return root


def test_parallel_equals_serial(tmp_path: Path) -> None:
    root = _parallel_folder(tmp_path)
    serial = ingest([root], open_store(tmp_path / "h1"), workers=1)
    parallel = ingest([root], open_store(tmp_path / "h2"), workers=2)
    assert parallel.corpus_id == serial.corpus_id
    strip = {"created_at", "source_path"}
    assert [d.model_dump(exclude=strip) for d in parallel.documents] == [
        d.model_dump(exclude=strip) for d in serial.documents
    ]
    assert [f.reason for f in parallel.failures] == [f.reason for f in serial.failures]
    assert len(parallel.documents) == 7 and "corrupt PDF" in parallel.failures[0].reason


class _Crash(HtmlParser):
    def parse(self, data: bytes, path: Path) -> ParsedText:
        if b"CRASH" in data:
            os._exit(3)  # a parser library that kills its process
        return super().parse(data, path)


def _await_single_thread(limit_s: float = 10.0) -> None:
    """Earlier tests may leave a mock LLM server's handler thread waiting on a keep-alive
    connection of a client that was never closed; collecting that client closes it, and the
    thread ends."""
    deadline = time.monotonic() + limit_s
    while threading.active_count() > 1 and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)


def test_a_worker_crash_fails_only_its_file(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rlmx.corpus import prepare

    reg = default_registry()
    reg.register(_Crash(), [".html"])
    monkeypatch.setattr(prepare, "_WORKER_REGISTRY", reg)  # inherited by forked workers
    root = tmp_path / "c"
    root.mkdir()
    for i in range(6):
        body = "CRASH now" if i == 2 else f"fine page number {i}"
        (root / f"f{i}.html").write_text(f"<html><body><p>{body}</p></body></html>")
    (root / "notes.txt").write_text("parsed in the main process\n")
    _await_single_thread()
    assert prepare.can_fork(), f"forked parsing needs a single-threaded process: {threading.enumerate()}"
    corpus = ingest([root], store, workers=2)
    names = [d.name for d in corpus.documents]
    assert names == ["f0.html", "f1.html", "f3.html", "f4.html", "f5.html", "notes.txt"]
    assert [Path(f.source_path).name for f in corpus.failures] == ["f2.html"]
    assert "crashed" in corpus.failures[0].reason
