"""``context`` inside the REPL: DocView/ContextView/Hit over stored canonical texts."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rlmx.corpus.canonical import CHECKPOINT, canonicalize
from rlmx.engine.resolver import ContextSearch
from rlmx.sandbox import _scan
from rlmx.sandbox.context import ContextView, open_context
from rlmx.sandbox.docview import DocView, Hit
from rlmx.sandbox.spanlog import SpanLog
from rlmx.sandbox.testing import spec_from_texts

ALPHABET = "abcdeé€😀 \n.xyzßΩ"


def _mixed(n: int, seed: int = 1) -> str:
    rnd = random.Random(seed)
    return "".join(rnd.choice(ALPHABET) for _ in range(n))


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[ContextView, SpanLog, dict[str, str]]:
    texts = {
        "mixed.txt": _mixed(3 * CHECKPOINT + 77),
        "notes.md": "# Notes\nThe launch code is 7-4-1.\nÉcole café naïve.\nGoodbye.\n",
        "ascii.txt": "alpha beta gamma\n" * 200 + "the needle is here\n",
    }
    spec = spec_from_texts(tmp_path, texts)
    log = SpanLog()
    ctx = open_context(spec.model_dump(), log, ContextSearch(spec))  # search: as the orchestrator answers it
    assert isinstance(ctx, ContextView)
    return ctx, log, {n: canonicalize(t) for n, t in texts.items()}


def _events(log: SpanLog) -> list[tuple[str, int, int]]:
    return [(e["kind"], e["start"], e["end"]) for e in log.drain()]


def test_slicing_equals_str_slicing(corpus):
    ctx, log, texts = corpus
    log.drain()
    rnd = random.Random(7)
    for name, text in texts.items():
        doc = ctx.doc(name)
        assert len(doc) == len(text)
        for _ in range(200):
            lim = len(text) + 5
            a, b = rnd.randint(-lim, lim), rnd.randint(-lim, lim)
            step = rnd.choice([None, None, 1, 2, -1, -3])
            assert doc[a:b:step] == text[a:b:step]
        for i in (0, 1, len(text) - 1, -1, -len(text)):
            assert doc[i] == text[i]
        with pytest.raises(IndexError):
            doc[len(text)]
        assert doc[:] == text


def test_span_log_records_absolute_reads_once_per_turn(corpus):
    ctx, log, texts = corpus
    log.drain()
    log.begin_step(3)
    doc = ctx[1]
    assert doc[8:12] == texts["notes.md"][8:12]
    doc[8:12]
    doc[-3:]
    doc[5:5]  # empty: not logged
    events = log.drain()
    n = len(texts["notes.md"])
    assert [(e["kind"], e["doc_id"], e["start"], e["end"], e["turn"]) for e in events] == [
        ("read", doc.id, 8, 12, 3),
        ("read", doc.id, n - 3, n, 3),
    ]


def test_windows_are_relative_and_log_stays_absolute(tmp_path):
    text = _mixed(2 * CHECKPOINT + 500, seed=3)
    base = spec_from_texts(tmp_path, {"w.txt": text})
    d = base.docs[0].model_copy(update={"window": (1000, 6000)})
    spec = base.model_copy(update={"docs": [d]})
    log = SpanLog()
    ctx = open_context(spec.model_dump(), log)
    doc = ctx[0]
    seen = text[1000:6000]
    assert len(doc) == 5000
    assert doc[10:20] == seen[10:20]
    assert doc[-5:] == seen[-5:]
    assert str(doc) == seen
    sub = seen[4000:4010]
    assert doc.find(sub) == seen.find(sub)
    assert doc.find(text[:20]) == seen.find(text[:20])  # text outside the window is unseen
    events = log.drain()
    assert ("read", 1010, 1020) in [(e["kind"], e["start"], e["end"]) for e in events]
    assert ("read", 5995, 6000) in [(e["kind"], e["start"], e["end"]) for e in events]
    first = seen.find(sub)
    assert ("scan", 1000 + first, 1000 + first + 10) in [(e["kind"], e["start"], e["end"]) for e in events]
    with pytest.raises(ValueError):
        open_context({"docs": [d.model_dump() | {"window": (0, 10**9)}]}, SpanLog())


def test_find_family_matches_str(corpus):
    ctx, _, texts = corpus
    rnd = random.Random(11)
    for name, text in texts.items():
        doc = ctx.doc(name)
        for _ in range(100):
            i = rnd.randrange(len(text))
            sub = text[i : i + rnd.randint(0, 6)]
            a = rnd.choice([None, 0, rnd.randint(-50, len(text) + 3)])
            b = rnd.choice([None, rnd.randint(-50, len(text) + 3)])
            assert doc.find(sub, a, b) == text.find(sub, a, b), (sub, a, b)
            assert doc.rfind(sub, a, b) == text.rfind(sub, a, b), (sub, a, b)
            assert doc.count(sub, a, b) == text.count(sub, a, b), (sub, a, b)
        assert ("needle" in doc) == ("needle" in text)
    with pytest.raises(ValueError):
        ctx[2].index("no such thing")


@pytest.mark.parametrize("block", [7, 64, 1000])
def test_block_scans_cross_block_boundaries(block):
    text = _mixed(5000, seed=block) + "needle" + _mixed(300) + "aaaa"
    read = lambda a, b: text[a:b]  # noqa: E731
    rnd = random.Random(block)
    for _ in range(200):
        i = rnd.randrange(len(text))
        sub = text[i : i + rnd.randint(1, 9)]
        a, b = sorted((rnd.randrange(len(text)), rnd.randrange(len(text))))
        assert _scan.find(read, sub, a, b, block=block) == text.find(sub, a, b)
        assert _scan.rfind(read, sub, a, b, block=block) == text.rfind(sub, a, b)
        assert _scan.count(read, sub, a, b, block=block) == text.count(sub, a, b)
    for pattern in [r"needle", r"é\S{0,3}", r"^ab", r"(?m)^\w+", r"a+", r"\bx\w*"]:
        rx = re.compile(pattern)
        want = [m.span() for m in rx.finditer(text) if m.end() > m.start()]
        got = list(_scan.grep(read, rx, 0, len(text), 10**6, block=block, overlap=64))
        assert got == want, pattern


def test_grep_offsets_on_non_ascii_text(corpus):
    ctx, log, texts = corpus
    log.drain()
    hits = ctx.grep(r"é\w*", max_hits=50)
    assert hits and all(isinstance(h, Hit) for h in hits)
    want = []
    for name in ctx.names:
        want += [(name, *m.span()) for m in re.finditer(r"é\w*", texts[name])][: 50 - len(want)]
    assert [(h.doc_name, h.start, h.end) for h in hits] == want
    h = hits[0]
    assert texts[h.doc_name][h.start : h.end] == h.text
    assert all(e["kind"] == "scan" for e in log.drain()[: len(hits)])
    assert len(ctx.grep("a", max_hits=3)) == 3
    assert ctx.doc("notes.md").grep(r"(?i)GOODBYE")[0].text == "Goodbye"
    with pytest.raises(re.error):
        ctx.grep("(")


def test_hit_repr_and_context_log_exactly_what_they_show(corpus):
    ctx, log, texts = corpus
    (hit,) = ctx.doc("notes.md").grep("launch code")
    log.drain()
    r = repr(hit)
    assert "notes.md" in r and "launch code" in r and len(r) < 140
    assert _events(log) == [("read", hit.start, hit.end)]
    around = hit.context(5)
    assert around == texts["notes.md"][hit.start - 5 : hit.end + 5]
    assert _events(log) == [("read", hit.start - 5, hit.end + 5)]
    long = Hit(ctx[0], 0, 500, None)
    assert len(repr(long)) < 140 and "..." in repr(long)
    assert _events(log) == [("read", 0, 77)]


def test_search_returns_hits_with_spans(corpus):
    ctx, log, _ = corpus
    log.drain()
    hits = ctx.search("launch code", k=3)
    assert hits and hits[0].doc_name == "notes.md"
    assert "launch code" in hits[0].text
    assert isinstance(hits[0].score, float)
    assert ctx.search("zzzunknownzzz") == []
    assert ctx.doc("ascii.txt").search("needle")[0].doc_name == "ascii.txt"
    assert log.drain()[0]["kind"] == "scan"
    with ThreadPoolExecutor(3) as ex:  # model code may search from threads
        found = list(ex.map(lambda q: ctx.search(q, k=1), ["launch", "needle", "gamma"]))
    assert [h[0].doc_name for h in found] == ["notes.md", "ascii.txt", "ascii.txt"]


def test_search_clips_to_windows_and_scans_without_index(tmp_path):
    text = ("filler words here\n" * 100) + "the zebra crossing\n" + ("more filler\n" * 100)
    at = text.index("zebra")
    for index in (True, False):
        folder = tmp_path / str(index)
        base = spec_from_texts(folder, {"z.txt": text}, index=index)
        d = base.docs[0].model_copy(update={"window": (at - 100, at + 100)})
        spec = base.model_copy(update={"docs": [d]})
        ctx = open_context(spec.model_dump(), SpanLog(), ContextSearch(spec))
        (hit,) = ctx.search("zebra", k=5)
        assert 0 <= hit.start < hit.end <= 200
        assert "zebra" in hit.text
        assert ctx[0][hit.start : hit.end] == text[at - 100 + hit.start : at - 100 + hit.end]


def test_text_kind_behaves_like_str(tmp_path):
    raw = "Line one: café.\nLine two: naïve 😀.\nLine three.\n"
    spec = spec_from_texts(tmp_path, {"t": raw}, kind="text")
    context = open_context(spec.model_dump(), SpanLog())
    assert isinstance(context, DocView)
    assert len(context) == len(raw)
    assert context[5:9] == raw[5:9] and context[-3:] == raw[-3:]
    assert context.find("two") == raw.find("two")
    assert "naïve" in context and "absent" not in context
    assert context.split("\n") == raw.split("\n")
    assert context.splitlines() == raw.splitlines()
    assert context.upper() == raw.upper()
    assert f"<{context}>" == f"<{raw}>"
    assert context + "!" == raw + "!" and "!" + context == "!" + raw
    assert context == raw and "".join(context) == raw
    assert context.startswith("Line") and context.endswith("three.\n")
    assert context.lines(1) == "Line two: naïve 😀.\n"
    assert context.lines(0, 2) == "".join(raw.splitlines(True)[:2])
    assert context.lines(5, 9) == ""
    assert context.grep(r"Line \w+")[2].text == "Line three"
    assert context.search("naïve")[0].doc_name == "t"
    with pytest.raises(AttributeError, match="str method"):
        context.no_such_attribute  # noqa: B018


def test_doc_lookup(corpus):
    ctx, _, _ = corpus
    assert ctx.doc("notes.md") is ctx[1] and ctx["notes.md"] is ctx[1]
    assert ctx.doc(ctx[2].id) is ctx[2] and ctx.doc(0) is ctx[0]
    assert len(ctx[0:2]) == 2 and [d.name for d in ctx] == ctx.names
    assert ctx.total_chars == sum(len(d) for d in ctx)
    with pytest.raises(KeyError, match=r"notes\.md"):
        ctx.doc("notes.mdx")


def test_subcall_tagging_direct_and_indexed():
    text = "".join(f"record {i:05d} value {i * 7}\n" for i in range(2000))
    read = lambda a, b: text[a:b]  # noqa: E731
    for n in (10, 1000):  # below and above the direct-test threshold
        log = SpanLog()
        log.begin_step(1)
        spans = [(i * 30, i * 30 + 25) for i in range(n)]
        for a, b in spans:
            log.read("d", a, b, text[a:b], read)
        log.read("d", 5, 7, text[5:7], read)  # too short to tag
        log.drain()
        prompt = "Summarise:\n" + text[90:115] + "\nand\n" + text[150:175]
        assert log.tag(prompt, "t2.1") == 2
        tagged = log.drain()
        got = sorted((e["start"], e["subcalls"][0]) for e in tagged)
        assert got == [(90, "t2.1"), (150, "t2.1")]
        assert log.find_read(text[90:115]) == ("d", 90, 115)
        assert log.find_read("not read") is None


def test_memory_stays_far_below_corpus_size(tmp_path):
    """A 300 MB ASCII text and a 120 MB non-ASCII one open, slice and scan in little memory."""
    script = textwrap.dedent(
        """
        import json, resource, sys, tracemalloc
        from rlmx.corpus.canonical import CHECKPOINT, canonicalize
        from rlmx.sandbox.context import open_context
        from rlmx.sandbox.spanlog import SpanLog
        folder = sys.argv[1]
        unit_a = ("x" * 99 + "\\n") * 10_000                      # 1,000,000 chars
        unit_u = ("é" * 1023 + "\\n") * 4 * 64                    # CHECKPOINT * 64 chars
        n_a, n_u = 300, 20
        with open(folder + "/a.txt", "w") as f:
            for _ in range(n_a): f.write(unit_a)
            f.write("NEEDLE")
        with open(folder + "/u.txt", "w", encoding="utf-8") as f:
            for _ in range(n_u): f.write(unit_u * 23)
        la, lu = n_a * len(unit_a) + 6, n_u * 23 * len(unit_u)
        step = len((unit_u[:CHECKPOINT]).encode())
        import array
        idx = array.array("Q", [i * step for i in range(lu // CHECKPOINT + 1)])
        open(folder + "/u.idx", "wb").write(idx.tobytes())
        spec = {"docs": [
            {"doc_id": "a", "name": "a", "length": la, "text_path": folder + "/a.txt"},
            {"doc_id": "u", "name": "u", "length": lu, "text_path": folder + "/u.txt",
             "index_path": folder + "/u.idx"}]}
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        ctx = open_context(spec, SpanLog())
        a, u = ctx[0], ctx[1]
        assert a[la - 6:] == "NEEDLE" and a[150_000_000:150_000_005] == "xxxxx"
        assert u[lu - 3:] == "éé\\n" and u[lu // 2: lu // 2 + 2] in ("éé", "é\\n", "\\né")
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
        anon = int(status["RssAnon"].split()[0])
        tracemalloc.start()
        found = a.find("NEEDLE")
        hits = ctx.grep("NEEDLE")
        ucount = u.count("\\n", lu - 5_000_000)
        peak = tracemalloc.get_traced_memory()[1]
        print(json.dumps({"rss_kb": after, "rss_growth_kb": after - before, "anon_kb": anon,
                          "scan_peak_bytes": peak, "found": found, "hits": len(hits),
                          "ucount": ucount, "sizes": [la, lu]}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    size_bytes = 300_000_006 + 2 * r["sizes"][1]
    assert r["found"] == r["sizes"][0] - 6 and r["hits"] == 1 and r["ucount"] > 0
    # the process's own memory after slicing (mapped file pages are the shared, reclaimable
    # page cache: the kernel may map whole large folios of a freshly written file)
    assert r["anon_kb"] * 1024 < 150 * 2**20 < size_bytes / 2
    assert r["scan_peak_bytes"] < 64 * 2**20  # Python heap while scanning 300 MB
