"""``context.search`` is answered by the orchestrator (a ``search`` tool request): the REPL
never opens an FTS index (each corpus has its own, ``docs/search.md``). Same hits and
offsets as when the REPL queried the index itself; only the execution's own documents and
windows, whatever the request says."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rlmx import RLM, Budgets, Status
from rlmx.corpus import context_spec, corpus_from_texts
from rlmx.corpus.index import SearchIndex
from rlmx.engine.resolver import ContextSearch, ToolResolverImpl, search_context
from rlmx.engine.trace import load_trace
from rlmx.lm import ScriptedLM
from rlmx.sandbox import ContextSpec, SandboxPolicy, ToolRequest, make_repl
from rlmx.sandbox.context import ContextView, open_context
from rlmx.sandbox.docview import DocView
from rlmx.sandbox.spanlog import SpanLog
from rlmx.sandbox.testing import spec_from_texts
from rlmx.store import open_store
from service_support import auth, client, make_service, ready_session

WORDS = "alpha beta gamma delta zebra crossing marshall plan europe vault code launch needle café naïve".split()  # noqa: SIM905
QUERIES = ["zebra crossing", "marshall", '"vault code"', "café naïve", "the", "needle launch europe", "zzzz"]


def _texts(n: int = 4, lines: int = 300, seed: int = 5) -> dict[str, str]:
    rnd = random.Random(seed)
    return {
        f"d{i}.txt": "\n".join(" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(3, 15))) for _ in range(lines))
        for i in range(n)
    }


def _reference(spec: ContextSpec, views: list[tuple[str, int, int]], query: str, k: int) -> list[tuple[Any, ...]]:
    """What the REPL computed when it opened the index itself (the code before the fix):
    ``(view number, start, end, score)``, offsets relative to the view."""
    if k <= 0 or not views:
        return []
    assert spec.index_path is not None
    index = SearchIndex(spec.index_path, readonly=True)
    try:
        length = {d.doc_id: d.length for d in spec.docs}
        ids = sorted({i for i, _, _ in views})
        fetch = k if all(lo == 0 and hi == length[i] for i, lo, hi in views) else 4 * k
        while True:
            rows = index.search(query, fetch, doc_ids=ids)
            hits = [
                (n, max(r.start, lo) - lo, min(r.end, hi) - lo, r.score)
                for r in rows
                for n, (i, lo, hi) in enumerate(views)
                if i == r.doc_id and r.start < hi and r.end > lo
            ]
            if len(hits) >= k or len(rows) < fetch or fetch >= 64 * k:
                break
            fetch *= 4
    finally:
        index.close()
    return hits[:k]


def _views(spec: ContextSpec) -> list[tuple[str, int, int]]:
    return [(d.doc_id, *(d.window or (0, d.length))) for d in spec.docs]


def _variants(spec: ContextSpec) -> dict[str, ContextSpec]:
    d0, d1, d2 = spec.docs[0], spec.docs[1], spec.docs[2]
    return {
        "whole": spec,
        "windowed": spec.model_copy(update={"docs": [d0.model_copy(update={"window": (1000, 9000)}), d1]}),
        "two windows of one document": spec.model_copy(
            update={
                "docs": [d2.model_copy(update={"window": (0, 3000)}), d2.model_copy(update={"window": (2500, 7000)})]
            }
        ),
        "text kind, windowed": spec.model_copy(
            update={"docs": [d1.model_copy(update={"window": (4000, 4500)})], "kind": "text"}
        ),
    }


def test_search_returns_the_same_hits_as_querying_the_index_directly(tmp_path: Path):
    base = spec_from_texts(tmp_path, _texts())
    checked = 0
    for name, spec in _variants(base).items():
        log = SpanLog()
        ctx = open_context(spec.model_dump(mode="json"), log, ContextSearch(spec))
        docs: list[DocView] = list(ctx) if isinstance(ctx, ContextView) else [ctx]
        views = _views(spec)
        for q in QUERIES:
            for k in (1, 3, 10, 50):
                got = [(docs.index(h.doc), h.start, h.end, h.score) for h in ctx.search(q, k)]
                assert got == _reference(spec, views, q, k), (name, q, k)
                for j, d in enumerate(docs):
                    got = [(j, h.start, h.end, h.score) for h in d.search(q, k)]
                    want = [(j, s, e, sc) for _, s, e, sc in _reference(spec, [views[j]], q, k)]
                    assert got == want, (name, j, q, k)
                    checked += len(got)
        events = log.drain()
        assert events and {e["kind"] for e in events} == {"scan"}
    assert checked > 500


def test_search_through_a_sandboxed_repl_matches_too(tmp_path: Path):
    base = spec_from_texts(tmp_path, _texts(3, 200))
    spec = _variants(base)["two windows of one document"]
    asked: list[dict[str, Any]] = []
    resolver = ToolResolverImpl(SimpleNamespace(spec=spec))  # type: ignore[arg-type]

    async def resolve(req: ToolRequest) -> Any:
        assert req.kind == "search" and req.id.startswith("t1.s")
        asked.append(req.payload)
        return await resolver(req)

    code = (
        "import json\n"
        "print(json.dumps([[[list(context).index(h.doc), h.start, h.end, h.score] for h in context.search(q, 5)]"
        f" for q in {QUERIES!r}]))"
    )

    async def go() -> Any:
        async with make_repl(spec, policy=SandboxPolicy(ast_guard=False)) as repl:
            return await repl.run(code, turn=1, resolver=resolve)

    r = asyncio.run(go())
    assert r.error is None, r.error
    got = json.loads(r.stdout)
    want = [[list(h) for h in _reference(spec, _views(spec), q, 5)] for q in QUERIES]
    assert got == want and any(got)
    assert len(asked) == len(QUERIES)
    assert asked[0]["windows"] == [[d.doc_id, *d.window] for d in spec.docs if d.window]


def test_without_an_index_covering_the_context_search_scans_in_the_sandbox(tmp_path: Path):
    texts = {"z.txt": ("filler words here\n" * 100) + "the zebra crossing\n" + ("more filler\n" * 100)}
    indexed = spec_from_texts(tmp_path / "a", texts)
    not_indexed = spec_from_texts(tmp_path / "b", texts, index=False)
    other_index = not_indexed.model_copy(update={"index_path": str(tmp_path / "empty" / "index.sqlite")})
    SearchIndex(str(other_index.index_path)).close()  # exists, but holds no document of the context
    asked: list[str] = []

    async def resolve(req: ToolRequest) -> Any:
        asked.append(req.kind)
        return search_context(other_index, req.payload)

    async def go(spec: ContextSpec) -> Any:
        async with make_repl(spec, policy=SandboxPolicy(ast_guard=False)) as repl:
            code = (
                "for _ in range(3):\n    (h,) = context.search('zebra', 5)\nprint(h.text in context[0][h.start:h.end])"
            )
            return await repl.run(code, turn=1, resolver=resolve)

    assert asyncio.run(go(not_indexed)).stdout == "True\n" and asked == []  # no index: not even asked
    r = asyncio.run(go(other_index))
    assert r.error is None and r.stdout == "True\n"
    assert asked == ["search"]  # told once that the index does not cover it; then scans
    assert search_context(indexed, {"query": "zebra", "k": 5}) != []


def test_a_forged_search_request_reaches_no_document_outside_the_context(tmp_path: Path):
    store = open_store(tmp_path / "home")
    a = corpus_from_texts({"secret.txt": "The vault code of tenant A is 9-9-9. " * 200}, store)
    b = corpus_from_texts({"notes.txt": ("Tenant B notes about the vault. " * 40 + "\n") * 20}, store)
    spec_a, spec_b = context_spec(a, store), context_spec(b, store)
    a_id, b_doc = spec_a.docs[0].doc_id, spec_b.docs[0]
    assert search_context(spec_a, {"query": "vault code", "k": 5})  # A's document is in A's index
    assert spec_a.index_path != spec_b.index_path  # one index per corpus; B's holds no A document
    assert not SearchIndex(str(spec_b.index_path), readonly=True, immutable=True).has(a_id)
    child = spec_b.model_copy(update={"docs": [b_doc.model_copy(update={"window": (1500, 4000)})]})
    for spec, lo, hi in ((spec_b, 0, b_doc.length), (child, 1500, 4000)):
        search = ContextSearch(spec)
        forged = [
            {"query": "vault code", "k": 50, "doc_ids": [a_id], "windows": [[a_id, 0, 10**9]]},
            {"query": "vault code", "k": 50, "doc_ids": [a_id, b_doc.doc_id], "windows": [[a_id, 0, 10**9]]},
            {"query": "vault code", "k": 50, "doc_ids": [a_id]},
            {"query": "vault code", "k": 50, "doc_ids": [b_doc.doc_id], "windows": [[b_doc.doc_id, -5, 10**9]]},
            {"query": "vault code", "k": 50, "doc_ids": [a_id, b_doc.doc_id], "windows": [[b_doc.doc_id, 0, 10**9]]},
            {"query": "vault code", "k": 50},
        ]
        for payload in forged:
            rows = search(payload)
            assert rows is not None
            assert all(r[0] == b_doc.doc_id and lo <= r[1] <= r[2] <= hi for r in rows), (payload, rows)
        assert search(forged[0]) == [] and search(forged[2]) == []
        assert search(forged[3]) and search(forged[-1])
        with pytest.raises(ValueError, match="at most one"):
            search({"query": "vault", "k": 5, "windows": [[b_doc.doc_id, 0, 10]] * 2})
        with pytest.raises(TypeError):
            search({"query": ["vault"], "k": 5})
        with pytest.raises(TypeError):
            search({"query": "vault", "k": "5"})
    # a huge k is capped; the rows never leave the context
    assert len(search_context(spec_b, {"query": "vault", "k": 10**18}) or []) <= 10_000


def test_another_tenants_documents_do_not_change_a_corpus_scores(tmp_path: Path):
    """BM25 statistics are per corpus: ingesting tenant A's documents into the same store
    leaves tenant B's hits, scores included, exactly as they were (a store-wide index would
    not: A's documents would change B's document frequencies)."""
    store = open_store(tmp_path / "home")
    texts_b = _texts(3, 120, seed=11)
    b = corpus_from_texts(texts_b, store)
    spec_b = context_spec(b, store)
    before = {q: search_context(spec_b, {"query": q, "k": 20}) for q in QUERIES}
    assert any(before.values())
    a = corpus_from_texts({f"a{i}.txt": "zebra crossing marshall vault code\n" * 50 for i in range(6)}, store)
    context_spec(a, store)
    after = {q: search_context(context_spec(b, store), {"query": q, "k": 20}) for q in QUERIES}
    assert after == before
    # what a store-wide index would have done: the same rows, other scores
    shared = SearchIndex(tmp_path / "store-wide.sqlite")
    for corpus in (b, a):
        shared.add_many((d.doc_id, store.blobs.get(d.text_key).decode()) for d in corpus.documents)
    ids = [d.doc_id for d in b.documents]
    mixed = [(r.doc_id, r.start, r.end, r.score) for r in shared.search("zebra crossing", 20, doc_ids=ids)]
    own = [tuple(r[:4]) for r in before["zebra crossing"]]
    assert sorted(x[:3] for x in mixed) == sorted(x[:3] for x in own) and mixed != own
    shared.close()
    store.close()


def test_child_contexts_search_their_window(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    long = "".join(f"Line {i}: {' '.join(random.Random(i).choice(WORDS) for _ in range(8))}.\n" for i in range(400))
    (corpus / "long.txt").write_text(long, encoding="utf-8")
    (corpus / "other.txt").write_text("Nothing about zebras here, only marshall plans.\n", encoding="utf-8")

    def script(messages: list[dict[str, Any]]) -> str:
        q = messages[1]["content"]
        if "<question>child search" in q:
            code = "import json\nhits = context.search('zebra', 8)\n"
            code += "FINAL(json.dumps([[h.start, h.end, h.score, h.text] for h in hits]))"
        elif len(messages) == 2:
            code = (
                "doc = context.doc('long.txt')\npart = doc[2500:7300]\n"
                "r = rlm_query('child search', context=part)\nprint(doc.id)\nprint(r)"
            )
        else:
            code = "FINAL(r)"
        return f"```repl\n{code}\n```"

    rlm = RLM(model=ScriptedLM(script), budgets=Budgets(max_depth=1, max_sub_calls=1))
    ans = rlm.ask(corpus, "q?")
    assert ans.status is Status.COMPLETED, ans
    trace = load_trace(rlm.store.meta, ans.execution_id)
    (child,) = trace["children"]
    got = json.loads(ans.text)
    parent = context_spec(rlm.store.meta.get_corpus(child["execution"]["corpus_id"]), rlm.store)
    d = next(d for d in parent.docs if d.name == "long.txt")
    spec = ContextSpec(docs=[d.model_copy(update={"window": (2500, 7300)})], index_path=parent.index_path, kind="text")
    want = _reference(spec, _views(spec), "zebra", 8)
    assert got and [[s, e, sc] for s, e, sc, _ in got] == [[s, e, sc] for _, s, e, sc in want]
    assert all(text == long[2500 + s : 2500 + e] for s, e, _, text in got)
    assert ans.usage.sub_calls == 1  # the rlm_query; searches cost no sub-call budget
    assert [s["kind"] for s in trace["subcalls"]] == ["rlm_query"]


def test_runtime_mode_answers_search_on_the_server_even_with_client_tools(tmp_path: Path, small_corpus: Path):
    svc = make_service(tmp_path / "home", allowed_paths=str(small_corpus))
    key = auth(svc.keys.create("acme")[0])
    with client(svc) as c:
        s = ready_session(c, key, [{"path": str(small_corpus)}])
        r = c.post(f"/v1/sessions/{s['session_id']}/executions/runtime", json={"sub_calls": "client"}, headers=key)
        eid = r.json()["execution_id"]
        code = "hits = context.search('Marshall Plan', k=2)\nprint([(h.doc_name, h.start, h.end) for h in hits])"
        step = c.post(f"/v1/executions/{eid}/steps?include=stdout", json={"code": code}, headers=key).json()
        assert not step["waiting"] and step["tool_requests"] == [] and step["success"], step
        assert step["stdout"].startswith("[('alpha.txt', 0, ")
        step = c.post(
            f"/v1/executions/{eid}/steps?include=stdout", json={"code": "a = llm_query('x')"}, headers=key
        ).json()
        assert step["waiting"] and [t["kind"] for t in step["tool_requests"]] == ["llm_query"]
        assert step["tool_requests"][0]["id"] == "t2.1"  # searches do not take sub-call ids
    svc.close()


def test_the_sandbox_is_granted_the_contexts_files_only(tmp_path: Path):
    from rlmx.sandbox._layers import corpus_files, corpus_paths

    store = open_store(tmp_path / "home")
    corpus_from_texts({"other.txt": "another tenant's text"}, store)
    spec = context_spec(corpus_from_texts({"a.txt": "plain", "b.txt": "naïve café"}, store), store)
    files = sorted({d.text_path for d in spec.docs} | {d.index_path for d in spec.docs if d.index_path})
    assert len(files) == 3  # two texts and the non-ASCII one's offset index
    assert corpus_files(spec.model_dump()) == corpus_paths(spec.model_dump()) == files
    assert spec.index_path not in files and all(Path(f).is_file() for f in files)

    from rlmx.sandbox.bwrap import BwrapREPL, bwrap_path

    if bwrap_path() is None:
        return
    repl = BwrapREPL(spec)
    repl.workspace = str(tmp_path / "ws")
    argv = repl._bwrap_argv(3)
    binds = {argv[i + 1] for i, a in enumerate(argv) if a in ("--ro-bind", "--bind")}
    assert set(files) <= binds
    assert not any(b == str(store.home) or (b.startswith(str(store.home) + "/blobs") and b not in files) for b in binds)
    assert spec.index_path not in binds
