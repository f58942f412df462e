"""Redaction of what leaves for outside LMs (issue 11, item 7): the real loop over the real
`openai` SDK against a local OpenAI-compatible server; no masked value reaches the server,
the answer shows the originals, the trace records counts only, the LLM cache still hits."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rlmx import RLM, Status
from rlmx.dev import MockLLMServer
from rlmx.engine.trace import load_trace
from rlmx.errors import ConfigError
from rlmx.lm.redact import Redactor, RedactPolicy
from service_support import auth, client, finished, make_service, ready_session

EMAIL = "alice.smith@example.com"
PHONE = "+1 (415) 555-0134"
OPENAI_KEY = "sk-proj-AbCdEf0123456789XYZabcdef"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
EMPLOYEE = "EMP-48213"
SECRETS = [EMAIL, PHONE, OPENAI_KEY, AWS_KEY, EMPLOYEE]
POLICY = r"emails,keys,phones,EMP-\d{5}"

DOC = (
    "Incident report 7.\n"
    f"The on-call engineer ({EMPLOYEE}) can be reached at {EMAIL} or {PHONE}.\n"
    f"The leaked deploy key was {OPENAI_KEY}; the AWS access key id {AWS_KEY} was rotated.\n"
    f"Escalate to {EMAIL} again if the key {OPENAI_KEY} shows up in logs.\n"
)

ROOT_1 = """Reading the report.
```repl
text = context[0][:]
note = llm_query("Who is on call and how to reach them? Report: " + text)
print(text)
print("NOTE:", note)
```"""
_PLACEHOLDER = re.compile(r"\[(?:EMAIL|KEY|PHONE|REDACTED)_\d+\]")


def _script(model: str, messages: list[dict]) -> str:
    if model == "mock-sub":  # the sub-LM quotes what it was given (placeholders, if masked)
        prompt = messages[-1]["content"]
        return "on call: " + " ".join(_PLACEHOLDER.findall(prompt)[:3])
    if sum(m["role"] == "assistant" for m in messages) == 0:
        return ROOT_1
    # The root echoes, in code, every placeholder it saw in the last observation.
    seen = list(dict.fromkeys(_PLACEHOLDER.findall(messages[-1]["content"])))
    return "```repl\nFINAL(" + json.dumps("Contacts: " + ", ".join(seen)) + " + ' | sub: ' + note)\n```"


def _corpus(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    (d / "incident.txt").write_text(DOC, encoding="utf-8")
    return d


def _logged(srv: MockLLMServer) -> str:
    return json.dumps([r.body or r.messages for r in srv.requests], ensure_ascii=False)


def test_no_masked_value_reaches_the_server_and_the_answer_has_the_originals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    docs = _corpus(tmp_path)
    with MockLLMServer(scripts=_script) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        rlm = RLM(model="openai:mock-root", sub_model="openai:mock-sub", redact=POLICY)
        ans = rlm.ask(docs, "Who is on call?")
        first = len(srv.requests)
        logged = _logged(srv)
        # The same question again: every masked prompt is identical, so the LLM cache hits.
        again = rlm.ask(docs, "Who is on call?")
        assert len(srv.requests) == first, "a repeated redacted run should be served from the LLM cache"
    assert ans.status is Status.COMPLETED, ans.error
    assert first == 3  # root turn 1, the sub-call, root turn 2
    for value in SECRETS:
        assert value not in logged, f"{value!r} reached the LM server"
        assert value in ans.text, f"the answer lacks the original {value!r}: {ans.text}"
    assert "[EMAIL_1]" in logged and "[KEY_1]" in logged and "[REDACTED_1]" in logged
    assert not _PLACEHOLDER.search(ans.text), ans.text
    assert again.text == ans.text

    trace = load_trace(rlm.store.meta, ans.execution_id)
    red = trace["execution"]["usage"]["redaction"]
    assert red["policy"] == ["email", "key", "phone", "regex"]
    assert red["values"] == {"email": 1, "key": 2, "phone": 1, "regex": 1}
    assert red["occurrences"]["email"] >= 2 and red["occurrences"]["key"] >= 3
    blob = json.dumps(red)
    assert not any(v in blob for v in SECRETS) and r"EMP-\d{5}" not in blob  # counts, never values or patterns


def test_without_a_policy_the_values_go_out_as_they_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The control: the same run unredacted sends the originals (so the test above can fail)."""
    docs = _corpus(tmp_path)
    with MockLLMServer(scripts=_script) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        rlm = RLM(model="openai:mock-root", sub_model="openai:mock-sub", cache=False)
        ans = rlm.ask(docs, "Who is on call?")
        logged = _logged(srv)
    assert ans.status is Status.COMPLETED, ans.error
    assert all(v in logged for v in SECRETS)
    assert "redaction" not in load_trace(rlm.store.meta, ans.execution_id)["execution"]["usage"]


def test_policy_parsing_and_stable_placeholders():
    p = RedactPolicy.parse([r"emails,keys,\d{2,4}-[A-Z]+", "phones"])
    assert p.kinds == ("email", "key", "phone") and p.regexes == (r"\d{2,4}-[A-Z]+",)
    r = Redactor(p)
    a = r.mask(f"mail {EMAIL}, key Bearer abcdefghijklmnop0123, ref 12-AB, mail {EMAIL}")
    assert a == "mail [EMAIL_1], key [KEY_1], ref [REDACTED_1], mail [EMAIL_1]"
    assert r.mask(f"{EMAIL} ghp_{'x' * 36}") == "[EMAIL_1] [KEY_2]"
    assert r.unmask("[EMAIL_1] and [KEY_1] and [EMAIL_9]") == f"{EMAIL} and Bearer abcdefghijklmnop0123 and [EMAIL_9]"
    assert r.mask("released 2024-07-18, build 1234") == "released 2024-07-18, build 1234"  # dates are not phones
    with pytest.raises(ConfigError, match="invalid redaction regex"):
        RedactPolicy.parse("emails,(unclosed")
    with pytest.raises(ConfigError, match="empty string"):
        RedactPolicy.parse("x*")
    assert not RedactPolicy.parse(None).enabled


def test_cli_ask_redact(tmp_path: Path):
    docs = _corpus(tmp_path)
    with MockLLMServer(scripts=_script) as srv:
        env = {
            **os.environ,
            "OPENAI_BASE_URL": srv.base_url,
            "OPENAI_API_KEY": "test",
            "RLMX_HOME": str(tmp_path / "home"),
        }
        cmd = [sys.executable, "-m", "rlmx.cli", "ask", str(docs), "Who is on call?", "--json", "-q"]
        models = ["--model", "openai:mock-root", "--sub-model", "openai:mock-sub"]
        p = subprocess.run([*cmd, *models, "--redact", POLICY], env=env, capture_output=True, text=True, timeout=120)
        logged = _logged(srv)
        bad = subprocess.run([*cmd, *models, "--redact", "(x"], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert all(v in out["answer"] for v in SECRETS) and not any(v in logged for v in SECRETS)
    assert bad.returncode == 2 and "invalid redaction regex" in bad.stderr and "Traceback" not in bad.stderr


def test_service_execution_with_redact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    docs = _corpus(tmp_path)
    with MockLLMServer(scripts=_script) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        svc = make_service(tmp_path / "h", allowed_paths=str(docs), service_models="openai:mock-root,openai:mock-sub")
        k, _ = svc.keys.create("acme")
        with client(svc) as c:
            sid = ready_session(c, auth(k), [{"source_name": "d", "path": str(docs)}])["session_id"]
            body = {"question": "Who is on call?", "models": {"root": "openai:mock-root", "sub": "openai:mock-sub"}}
            bad = c.post(f"/v1/sessions/{sid}/executions", json={**body, "redact": ["emails,("]}, headers=auth(k))
            assert bad.status_code == 400 and "invalid redaction regex" in bad.json()["detail"]
            r = c.post(f"/v1/sessions/{sid}/executions", json={**body, "redact": [POLICY]}, headers=auth(k))
            assert r.status_code == 202, r.text
            e = finished(c, auth(k), r.json()["execution_id"])
        svc.close()
        logged = _logged(srv)
    assert e["status"] == "COMPLETED", e
    assert all(v in e["answer"] for v in SECRETS) and not any(v in logged for v in SECRETS)
    assert e["usage"]["redaction"]["values"] == {"email": 1, "key": 2, "phone": 1, "regex": 1}
