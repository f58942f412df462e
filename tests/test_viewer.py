"""The trace viewer without a browser: the view-model of a scripted tree, the rendered page
(escaped, self-contained with --out), citation windows that verify or say why not,
``rlmx view`` as a process (its server on 127.0.0.1), and the service's /ui pages: sign-in,
the session cookie, tenancy. The browser test is tests/test_viewer_browser.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx

from rlmx.service.routes.ui import COOKIE, make_token, read_token
from rlmx.viewer import build_view, citation_windows, load_page, render_page
from rlmx.viewer.build import parse_variables
from service_support import auth, client, finished, make_service, ready_session
from viewer_support import CANARY, CITED, N_SUBCALLS, scripted_tree

RLMX = [sys.executable, "-m", "rlmx.cli"]


def test_view_model_of_a_tree_with_a_child_and_subcalls(small_corpus: Path) -> None:
    rlm, ans = scripted_tree(small_corpus)
    page = load_page(rlm.store, ans.execution_id)
    root, (child,) = page.root, page.root.children
    assert [e.id for e in page.executions()] == [ans.execution_id, child.id]
    assert root.status == "COMPLETED" and child.depth == 1 and child.parent_id == root.id
    first, second, third = root.turns
    assert [s.kind for s in first.subcalls].count("llm_query_batched") == N_SUBCALLS
    (rq,) = [s for s in first.subcalls if s.kind == "rlm_query"]
    assert rq.child_id == child.id and not rq.cached
    assert first.variables == ["hits", "notes", "r"] and CANARY in first.response.text  # type: ignore[union-attr]
    assert second.error is not None and "NameError" in second.error.text and third.final is not None
    assert first.offset_s == 0 and second.offset_s == first.total_s
    spent = {b.name: b.spent for b in root.budgets}
    assert spent["sub-calls"] == N_SUBCALLS + 1 and spent["depth"] == 1
    (c,) = root.citations
    assert c.ok and c.text == CITED and c.window is not None
    assert c.window.span == CITED and c.window.before.endswith("after the war.\n")
    assert len(c.window.before) + len(c.window.span) + len(c.window.after) == c.window.window_end


def test_page_escapes_the_trace_and_highlights_code(small_corpus: Path) -> None:
    rlm, ans = scripted_tree(small_corpus)
    html = render_page(load_page(rlm.store, ans.execution_id))
    assert CANARY not in html and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert len(re.findall(r"<script\b", html)) == 1  # the viewer's own, inlined
    assert '<div class="hl"><pre>' in html and '<span class="n">llm_query_batched</span>' in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing from the network
    served = render_page(load_page(rlm.store, ans.execution_id), asset_base="/static")
    assert '<script src="/static/viewer.js">' in served and "<style>" not in served


def test_a_tampered_citation_does_not_verify(small_corpus: Path) -> None:
    rlm, ans = scripted_tree(small_corpus)
    good = ans.citations[0].model_dump()
    bad = {**good, "start": good["start"] + 1}
    other = {**good, "doc_id": "doc_00000000000000000000"}
    windows = citation_windows(rlm.store, [good, bad, other], radius=10)
    w_good, w_bad = (
        windows[(good["doc_id"], good["start"], good["end"])],
        windows[(bad["doc_id"], bad["start"], bad["end"])],
    )
    assert not isinstance(w_good, str) and w_good.ok and len(w_good.before) == 10
    assert not isinstance(w_bad, str) and not w_bad.ok and "checksum does not match" in w_bad.reason
    assert windows[(other["doc_id"], other["start"], other["end"])] == "unknown document (not in this RLMX_HOME)"
    hidden = citation_windows(rlm.store, [good], allowed=lambda _d: False)
    assert list(hidden.values()) == ["unknown document"]


def test_variables_come_from_the_record_or_the_observation() -> None:
    assert parse_variables({"variables": ["a", "b"]}) == ["a", "b"]
    assert parse_variables({"observation": "Turn 1 output:\nx\nVariables: a, b_2\nContinue"}) == ["a", "b_2"]
    assert parse_variables({"observation": "Variables in prose: no"}) == [] and parse_variables({}) == []


def test_a_large_trace_renders_lazily() -> None:
    """150 turns with 8 sub-calls each: every turn's body is an inert template until opened,
    and long texts are capped (the page stays bounded)."""
    subcalls = [
        {"id": f"t{t}.{i}", "kind": "llm_query", "turn": t, "prompt": "p" * 50_000, "response": "r"}
        for t in range(1, 151)
        for i in range(1, 9)
    ]
    turns = [{"turn": t, "code": f"x{t} = {t}", "response": "ok", "timings": {"total_s": 0.5}} for t in range(1, 151)]
    trace = {
        "execution": {"execution_id": "exe_big", "question": "q", "status": "COMPLETED", "usage": {"sub_calls": 1200}},
        "turns": turns,
        "subcalls": subcalls,
        "children": [],
    }
    page = build_view(trace)
    assert len(page.root.turns) == 150 and page.root.n_subcalls == 1200
    html = render_page(page)
    assert html.count('<template class="lazy">') == 150
    assert len(html) < 150 * 8 * 20_000  # each 50,000-character prompt shows at most 8,000
    assert "42,000 more characters not shown" in html


def _rlmx(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RLMX, *args], capture_output=True, text=True, timeout=120, **kw)  # type: ignore[call-overload]


def test_rlmx_view_writes_a_file_and_serves_the_page(small_corpus: Path, tmp_path: Path) -> None:
    none = _rlmx("view")
    assert none.returncode == 1 and "rlmx ask" in none.stderr and "Traceback" not in none.stderr
    _rlm, ans = scripted_tree(small_corpus)
    out = tmp_path / "trace.html"
    done = _rlmx("view", "--out", str(out))  # default: the latest execution
    assert done.returncode == 0, done.stderr
    assert ans.execution_id in out.read_text(encoding="utf-8") and "<style>" in out.read_text(encoding="utf-8")
    missing = _rlmx("view", "exe_missing")
    assert missing.returncode == 1 and "exe_missing" in missing.stderr
    bad_dir = _rlmx("view", "--out", str(tmp_path / "no" / "such" / "x.html"))
    assert bad_dir.returncode == 2 and "cannot write" in bad_dir.stderr

    proc = subprocess.Popen(
        [*RLMX, "view", ans.execution_id], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()  # printed once the socket listens
        assert re.fullmatch(rf"http://127\.0\.0\.1:\d+/executions/{ans.execution_id}", url), url
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and CITED in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        base = url.rsplit("/executions/", 1)[0]
        assert httpx.get(base + "/static/viewer.js", timeout=30).status_code == 200
        assert httpx.get(base + "/static/../../etc/passwd", timeout=30).status_code == 404
        assert httpx.get(base + "/executions/exe_missing", timeout=30).status_code == 404
        rebound = httpx.get(url, headers={"Host": "attacker.example"}, timeout=30)
        assert rebound.status_code == 400  # DNS rebinding: another Host is refused
        home = httpx.get(base + "/", timeout=30, follow_redirects=True)
        assert home.status_code == 200 and home.url.path == f"/executions/{ans.execution_id}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_token_is_signed_and_expires() -> None:
    pepper, other = b"p" * 32, b"q" * 32
    key_hmac = "a" * 64
    token = make_token(pepper, key_hmac, now=1000)
    assert read_token(pepper, token, now=1001) == key_hmac
    assert read_token(other, token, now=1001) is None
    assert read_token(pepper, token, now=1000 + 13 * 3600) is None
    h, exp, sig = token.split(".")
    assert read_token(pepper, f"{'b' * 64}.{exp}.{sig}", now=1001) is None
    assert read_token(pepper, f"{h}.{int(exp) + 99}.{sig}", now=1001) is None
    for junk in (None, "", "x", "a.b.c", f"{h}.{exp}", "é" * 10):
        assert read_token(pepper, junk) is None


def test_ui_needs_a_sign_in_and_keeps_tenants_apart(tmp_path: Path, small_corpus: Path) -> None:
    svc = make_service(tmp_path / "home", allowed_paths=str(small_corpus))
    key_a, key_b = svc.keys.create("tenant-a")[0], svc.keys.create("tenant-b")[0]
    with client(svc) as c:
        s = ready_session(c, auth(key_a), [{"path": str(small_corpus)}])
        r = c.post(
            f"/v1/sessions/{s['session_id']}/executions", json={"question": "What rebuilt Europe?"}, headers=auth(key_a)
        )
        eid = r.json()["execution_id"]
        e = finished(c, auth(key_a), eid)
        assert e["status"] == "COMPLETED" and e["citations"]
        page_url = f"/ui/executions/{eid}"

        anon = c.get(page_url)
        assert anon.status_code == 401 and 'action="/ui/login"' in anon.text and f'value="{page_url}"' in anon.text
        assert c.get(page_url, headers=auth(key_a)).status_code == 401  # a bearer key is not a session
        wrong = c.post("/ui/login", data={"key": "rlmx_not-a-key", "next": page_url}, follow_redirects=False)
        assert (
            wrong.status_code == 401
            and "invalid or revoked" in wrong.text
            and COOKIE not in wrong.headers.get("set-cookie", "")
        )

        signed = c.post("/ui/login", data={"key": key_a, "next": page_url}, follow_redirects=False)
        assert signed.status_code == 303 and signed.headers["location"] == page_url
        cookie = signed.headers["set-cookie"]
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower() and "Path=/ui" in cookie
        assert key_a not in cookie and key_a not in signed.headers["location"]
        page = c.get(page_url)
        assert page.status_code == 200 and eid in page.text and "verifies: yes" in page.text
        assert key_a not in page.text and 'src="/ui/static/viewer.js"' in page.text
        assert c.get("/ui/static/viewer.css").status_code == 200
        evil = c.post("/ui/login", data={"key": key_a, "next": "//evil.example/x"}, follow_redirects=False)
        assert evil.headers["location"] == "/ui/"

        c.cookies.clear()
        assert c.post("/ui/login", data={"key": key_b, "next": "/ui/"}, follow_redirects=False).status_code == 303
        theirs, nobody = c.get(page_url), c.get("/ui/executions/exe_" + "0" * 22)
        assert theirs.status_code == nobody.status_code == 404
        assert theirs.text.replace(eid, "ID") == nobody.text.replace("exe_" + "0" * 22, "ID")
        assert "What rebuilt Europe" not in theirs.text

        svc.keys.revoke(key_b)
        assert c.get(page_url).status_code == 401  # a revoked key's session ends with it
        assert c.post("/ui/logout", follow_redirects=False).status_code == 303
        schema = json.dumps(c.get("/openapi.json", headers=auth(key_a)).json())
        assert "/ui/" not in schema
