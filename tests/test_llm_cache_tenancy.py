"""The LLM cache is per tenant (issue 8 item 7): through the HTTP service, against a local
OpenAI-compatible server whose request log shows which calls really reached the provider.

Tenant A asks; tenant B asks the very same question over the same documents → B's root and
sub-calls reach the provider (B's ``cached`` flags say nothing about what A asked); A asking
again is answered from A's cache. With ``RLMX_SHARED_LLM_CACHE=1`` B hits A's entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rlmx.dev import MockLLMServer
from rlmx.lm.cache import CacheBackend, MemoryCache
from rlmx.lm.wrappers import cache_key
from rlmx.store import open_store
from service_support import auth, client, finished, make_service, ready_session

ROOT = """```repl
v = llm_query("Tenant A's private question: what is the vault code of project zebra?")
FINAL(v)
```"""
QUESTION = "What is the vault code?"


def _script(model: str, messages: list[dict[str, Any]]) -> str:
    return ROOT if model == "mock-root" else "the code is 7-4-1"


def _ask(c: Any, headers: dict[str, str], sid: str) -> dict[str, Any]:
    r = c.post(f"/v1/sessions/{sid}/executions", json={"question": QUESTION}, headers=headers)
    assert r.status_code == 202, r.text
    e = finished(c, headers, r.json()["execution_id"])
    assert e["status"] == "COMPLETED", e
    return e


def _subcalls_cached(c: Any, headers: dict[str, str], eid: str) -> list[bool]:
    trace = c.get(f"/v1/executions/{eid}/trace", headers=headers).json()
    return [bool(s["cached"]) for s in trace["subcalls"]]


def _run(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> list[list[str]]:
    """Provider requests (model names) made by: A, then B, then A again."""
    with MockLLMServer(scripts=_script) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
        monkeypatch.setenv("RLMX_MODEL", "openai:mock-root")
        monkeypatch.setenv("RLMX_SUB_MODEL", "openai:mock-sub")
        svc = make_service(tmp_path / "home", allowed_paths=str(corpus), **settings)
        a, b = auth(svc.keys.create("tenant-a")[0]), auth(svc.keys.create("tenant-b")[0])
        seen: list[list[str]] = []
        with client(svc) as c:
            sa = ready_session(c, a, [{"path": str(corpus)}])["session_id"]
            sb = ready_session(c, b, [{"path": str(corpus)}])["session_id"]
            for headers, sid in ((a, sa), (b, sb), (a, sa)):
                before = len(srv.requests)
                e = _ask(c, headers, sid)
                assert e["answer"] == "the code is 7-4-1"
                seen.append([r.model or "" for r in srv.requests[before:]])
                cached = _subcalls_cached(c, headers, e["execution_id"])
                assert cached == [not seen[-1]]  # the flag B sees tells nothing about A
        svc.close()
    return seen


def test_a_cached_response_is_shared_only_within_a_tenant(
    tmp_path: Path, small_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_a, then_b, again_a = _run(tmp_path, small_corpus, monkeypatch)
    assert sorted(first_a) == ["mock-root", "mock-sub"]
    assert sorted(then_b) == ["mock-root", "mock-sub"]  # B's calls reach the provider: not cached
    assert again_a == []  # A's own cache answers A


def test_operators_can_opt_into_a_shared_cache(
    tmp_path: Path, small_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLMX_SHARED_LLM_CACHE", "1")
    first_a, then_b, again_a = _run(tmp_path, small_corpus, monkeypatch)
    assert sorted(first_a) == ["mock-root", "mock-sub"]
    assert then_b == [] and again_a == []  # B hits A's entries


def test_namespaces_partition_the_key_and_the_default_keeps_old_keys() -> None:
    msgs = [{"role": "user", "content": "hi"}]
    plain = cache_key("openai", "m", None, None, msgs)  # type: ignore[arg-type]
    assert cache_key("openai", "m", None, None, msgs, "") == plain  # type: ignore[arg-type]
    a = cache_key("openai", "m", None, None, msgs, "tenant:a")  # type: ignore[arg-type]
    b = cache_key("openai", "m", None, None, msgs, "tenant:b")  # type: ignore[arg-type]
    assert len({plain, a, b}) == 3


def test_the_metadata_store_is_a_cache_backend(tmp_path: Path) -> None:
    store = open_store(tmp_path / "home")
    try:
        assert isinstance(store.meta, CacheBackend) and isinstance(MemoryCache(), CacheBackend)
    finally:
        store.close()
