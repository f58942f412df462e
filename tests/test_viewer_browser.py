"""The trace viewer in a real browser: Debian's ``chromium`` driven headless by Playwright
(``executable_path`` the system Chromium; ``playwright install`` is never run). A scripted
tree with a child and 61 sub-calls is opened from ``rlmx view`` (served) and from
``rlmx view --out`` (a file, with every network request refused); a turn is expanded, more
sub-calls shown, a citation clicked; against a real ``rlmx serve``, tenant A signs in and
sees its page, tenant B gets 404. Screenshots are saved in the test's tmp dir and copied
to ``$RLMX_TEST_ARTIFACTS`` when set."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from rlmx.viewer.model import dom_id
from service_support import rlmx_serve, wait_for
from viewer_support import CITED, N_SUBCALLS, scripted_long_run, scripted_tree

CHROMIUM = os.environ.get("RLMX_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
RLMX = [sys.executable, "-m", "rlmx.cli"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's (`apt-get install chromium`; .ci/run does) "
            "or set RLMX_CHROMIUM to a Chromium binary",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: `sh scripts/uv sync` (it is in the dev group)", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def expect(locator: Any) -> Any:
    """Playwright's auto-waiting assertions (imported here: the ``browser`` fixture is what
    reports a missing playwright package)."""
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def _tree(corpus: Path, run: Any = scripted_tree) -> tuple[Any, Any]:
    """``run(corpus)`` in a thread of its own: Playwright's sync API keeps an event loop
    running in this one, and the engine runs its own."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run, corpus).result()


def _screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 10_000
    artifacts = os.environ.get("RLMX_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / name)
    return path


def _check_citation(page: Any, section: str) -> None:
    page.locator(f"#{section} button.cite").first.click()
    panel = page.locator("#cite-panel")
    panel.wait_for(state="visible")
    assert panel.locator("mark.cited").inner_text() == CITED
    assert "verifies: yes" in panel.locator(".verdict").inner_text()
    window = panel.locator("pre.doc-window").inner_text()
    assert window.index("The Marshall Plan rebuilt Europe after the war.") < window.index(CITED)


def test_served_viewer_of_a_tree_with_a_child(browser: Any, small_corpus: Path, tmp_path: Path) -> None:
    _rlm, ans = _tree(small_corpus)
    child_id = _rlm.store.meta.list_executions(parent_id=ans.execution_id)[0].execution_id
    root, child = dom_id(ans.execution_id), dom_id(child_id)
    proc = subprocess.Popen([*RLMX, "view"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.endswith(f"/executions/{ans.execution_id}"), url
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        elsewhere: list[str] = []
        page.on(
            "request", lambda r: None if r.url.startswith(("http://127.0.0.1:", "data:")) else elsewhere.append(r.url)
        )
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        assert page.locator("header.top .status").inner_text() == "COMPLETED"
        assert page.locator("ul.tree a.node").count() == 2
        assert page.locator(f"#{root} .turn-body").count() == 0  # turn bodies are built when opened

        turn1 = page.locator(f"#{root}-t1")
        turn1.locator("summary").click()
        body = turn1.locator(".turn-body")
        body.wait_for(state="visible")
        assert body.locator(".code .hl span.n", has_text="llm_query_batched").count() == 1  # highlighted
        assert body.locator("ul.vars li").all_inner_texts() == ["hits", "notes", "r"]
        assert CITED in body.locator("pre.stdout").inner_text()
        subcalls = body.locator("details.subcall")
        assert subcalls.count() == 50
        body.locator("button.more").click()
        expect(subcalls).to_have_count(N_SUBCALLS + 1)
        expect(body.locator("button.more")).to_have_count(0)
        first = subcalls.first
        first.locator("summary").click()
        assert "Summarise passage 0" in first.locator("pre.prompt").inner_text()
        assert "paid" in first.locator("summary").inner_text()
        assert page.evaluate("window.__pwned") is None  # the LM's markup was shown, not run

        page.locator(f"#{root}-t2 summary").click()
        assert "NameError" in page.locator(f"#{root}-t2 pre.error").inner_text()

        body.locator("a.child").click()
        assert page.evaluate("location.hash") == f"#{child}"
        assert page.locator(f"#{child} h2").inner_text().startswith("Child execution · depth 1")

        _check_citation(page, root)
        _screenshot(page, tmp_path, "viewer-served.png")
        assert not errors and not elsewhere, (errors, elsewhere)
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_viewer_file_opens_offline(browser: Any, small_corpus: Path, tmp_path: Path) -> None:
    _rlm, ans = _tree(small_corpus)
    out = tmp_path / "trace.html"
    done = subprocess.run([*RLMX, "view", ans.execution_id, "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    context = browser.new_context(offline=True)
    page = context.new_page()
    refused: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(("file:", "data:")):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(out.as_uri())
    page.locator(f"#{dom_id(ans.execution_id)}-t3 summary").click()
    assert page.locator(f"#{dom_id(ans.execution_id)}-t3 pre.final").inner_text() == CITED
    _check_citation(page, dom_id(ans.execution_id))
    _screenshot(page, tmp_path, "viewer-file.png")
    assert refused == []
    context.close()


def test_a_long_run_stays_light(browser: Any, small_corpus: Path, tmp_path: Path) -> None:
    """120 turns and 1,071 sub-calls: the page holds a bounded number of live elements (each
    turn's body waits in an inert template until opened) and opening the last turn works."""
    _rlm, ans = _tree(small_corpus, scripted_long_run)
    assert ans.usage.turns == 120 and ans.usage.sub_calls == 119 * 9
    out = tmp_path / "long.html"
    done = subprocess.run([*RLMX, "view", "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(out.as_uri())
    turns = page.locator("details.turn")
    assert turns.count() == 120 and page.locator("details.subcall").count() == 0
    assert page.evaluate("document.getElementsByTagName('*').length") < 3000
    turns.nth(118).locator("summary").click()
    # the body is built by a 'toggle' handler, which the browser fires as a task after the click
    expect(turns.nth(118).locator("details.subcall")).to_have_count(9)
    last = turns.nth(118).locator("details.subcall").nth(8)
    last.locator(":scope > summary").click()
    assert "part 8 of turn 119: xxx" in last.locator("details.long.prompt > summary").inner_text()
    page.close()


def _sign_in(browser: Any, base: str, key: str, page_url: str) -> tuple[Any, Any]:
    context = browser.new_context()
    page = context.new_page()
    first = page.goto(base + page_url)
    assert first is not None and first.status == 401
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert key not in page.url
    return context, page


def test_service_viewer_is_per_tenant(browser: Any, small_corpus: Path, tmp_path: Path) -> None:
    env = {**os.environ, "RLMX_HOME": str(tmp_path / "home"), "RLMX_ALLOWED_PATHS": str(small_corpus)}
    keys = []
    for tenant in ("tenant-a", "tenant-b"):
        made = subprocess.run([*RLMX, "keys", "create", "--tenant", tenant], env=env, capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        keys.append(made.stdout.strip())
    h = {"Authorization": f"Bearer {keys[0]}"}
    with rlmx_serve(env, tmp_path / "serve.log") as served:
        base = served.base
        with httpx.Client(base_url=base, timeout=30) as c:
            sid = c.post("/v1/sessions", json={"docs": [{"path": str(small_corpus)}]}, headers=h).json()["session_id"]
            wait_for(lambda: c.get(f"/v1/sessions/{sid}", headers=h).json()["status"] == "READY", "session")
            body = {"question": "What did Congress debate?", "models": {"root": "baseline"}}
            eid = c.post(f"/v1/sessions/{sid}/executions", json=body, headers=h).json()["execution_id"]
            wait_for(lambda: c.get(f"/v1/executions/{eid}", headers=h).json()["status"] != "RUNNING", "execution")
        page_url = f"/ui/executions/{eid}"

        ctx_a, page_a = _sign_in(browser, base, keys[0], page_url)
        assert page_a.url == base + page_url
        assert page_a.locator("header.top .status").inner_text() == "COMPLETED"
        page_a.locator(f"#{dom_id(eid)} button.cite").first.click()
        panel = page_a.locator("#cite-panel")
        panel.wait_for(state="visible")
        assert "verifies: yes" in panel.locator(".verdict").inner_text()
        assert panel.locator("mark.cited").inner_text() in page_a.locator(".answer-text").inner_text()
        cookies = ctx_a.cookies()
        assert [(k["name"], k["httpOnly"], k["sameSite"]) for k in cookies] == [("rlmx_ui", True, "Strict")]
        assert keys[0] not in cookies[0]["value"]
        _screenshot(page_a, tmp_path, "viewer-service.png")
        ctx_a.close()

        ctx_b, page_b = _sign_in(browser, base, keys[1], page_url)
        shown = page_b.goto(base + page_url)
        assert shown is not None and shown.status == 404
        assert "What did Congress debate" not in page_b.content()
        assert re.search(r"not found", page_b.content())
        ctx_b.close()
