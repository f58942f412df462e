"""Custom tools (docs/repl.md): ``RLM(tools=[fn])`` and ``rlmx ask --tool MODULE:FUNCTION``
expose Python functions to model code by name; they run in the orchestrator's process under
``max_tool_calls`` and a per-call timeout, with JSON arguments and results, traced and
replayed on resume. Through the real loop: real REPL processes, the real ``openai`` SDK
against ``rlmx.dev.MockLLMServer``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rlmx import RLM, Status
from rlmx.dev import MockLLMServer
from rlmx.engine.trace import load_trace
from rlmx.errors import ConfigError


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def _env(monkeypatch: pytest.MonkeyPatch, srv: MockLLMServer) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")


def _turns(*codes: str):
    def script(model: str, messages: list[dict]) -> str:
        return repl(codes[sum(m["role"] == "assistant" for m in messages)])

    return script


CALLS: list[tuple[str, int]] = []


def forecast(city: str, days: int = 3) -> dict:
    """Weather forecast for CITY over DAYS days, as {"city", "days", "pid"}."""
    CALLS.append((city, days))
    return {"city": city, "days": days, "pid": os.getpid()}


def test_a_tool_runs_in_the_orchestrator_and_is_traced(small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    CALLS.clear()
    code = "r = forecast('Paris', days=2)\nFINAL(str(r['pid']) + ' ' + r['city'])"
    with MockLLMServer(scripts={"root": _turns(code)}) as srv:
        _env(monkeypatch, srv)
        rlm = RLM(model="openai:root", sub_model="openai:root", tools=[forecast])
        ans = rlm.ask(small_corpus, "q?")
        system = srv.requests[0].messages[0]["content"]
    assert ans.status is Status.COMPLETED, ans.error
    assert ans.text == f"{os.getpid()} Paris"  # this process, not the sandbox's
    assert CALLS == [("Paris", 2)] and ans.usage.tool_calls == 1 and ans.usage.sub_calls == 0
    assert "`forecast(city: str, days: int = 3) -> dict`: Weather forecast for CITY" in system
    (rec,) = load_trace(rlm.store.meta, ans.execution_id)["subcalls"]
    assert rec["kind"] == "tool" and rec["id"] == "t1.x1" and rec["tool"] == "forecast"
    assert json.loads(rec["response"])["city"] == "Paris" and rec["error"] is None


def test_no_tools_section_without_tools(small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    with MockLLMServer(scripts={"root": _turns("FINAL(str('forecast' in dir()))")}) as srv:
        _env(monkeypatch, srv)
        ans = RLM(model="openai:root", sub_model="openai:root").ask(small_corpus, "q?")
        system = srv.requests[0].messages[0]["content"]
    assert ans.text == "False" and "Custom tools" not in system


def test_tool_errors_reach_the_code(small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    never = threading.Event()

    def boom(x: int) -> int:
        """Always fails."""
        raise ValueError(f"bad x {x}")

    def unjson() -> object:
        return {1, 2}

    def stuck() -> None:
        never.wait(20)

    code = (
        "out = []\n"
        "for f, a in [(boom, (3,)), (unjson, ()), (stuck, ())]:\n"
        "    try:\n        f(*a)\n    except RuntimeError as e:\n        out.append(str(e))\n"
        "try:\n    boom({1})\nexcept TypeError as e:\n    out.append('TypeError ' + str(e))\n"
        "FINAL(' || '.join(out))"
    )
    with MockLLMServer(scripts={"root": _turns(code)}) as srv:
        _env(monkeypatch, srv)
        rlm = RLM(model="openai:root", tools=[boom, unjson, stuck], tool_timeout_s=0.5)
        ans = rlm.ask(small_corpus, "q?")
    # the timed-out call's thread is still running: it did not hold up the end of ask()
    assert any(t.name == "rlmx-tool" and t.is_alive() for t in threading.enumerate())
    never.set()
    assert ans.status is Status.COMPLETED, ans.error
    raised, not_json, timed_out, bad_args = ans.text.split(" || ")
    assert "boom raised ValueError: bad x 3" in raised
    assert "unjson's result must be JSON values" in not_json
    assert "stuck did not answer within 0.5 s" in timed_out
    assert bad_args.startswith("TypeError tool: arguments must be JSON values")
    assert ans.usage.tool_calls == 3  # the call with non-JSON arguments never left the REPL
    recs = load_trace(rlm.store.meta, ans.execution_id)["subcalls"]
    assert [r["id"] for r in recs] == ["t1.x1", "t1.x2", "t1.x3"] and all(r["error"] for r in recs)


def test_max_tool_calls_holds(small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    CALLS.clear()
    code = "for c in ['a', 'b', 'c', 'd']:\n    forecast(c)\nprint('not reached')"
    with MockLLMServer(scripts={"root": _turns(code, "FINAL('x')")}) as srv:
        _env(monkeypatch, srv)
        ans = RLM(model="openai:root", tools=[forecast], budgets={"max_tool_calls": 2}).ask(small_corpus, "q?")
    assert ans.status is Status.BUDGET_EXCEEDED
    assert "tool-call budget of 2" in (ans.error or "")
    assert CALLS == [("a", 3), ("b", 3)] and ans.usage.tool_calls == 2


def test_budgets_hold_with_tools_futures_and_batched_children_in_parallel(
    small_corpus: Path, monkeypatch: pytest.MonkeyPatch
):
    # tools, sub-LM futures and batched children, all started before any is collected:
    # neither the sub-call budget nor the tool budget is ever passed at the server or here
    CALLS.clear()

    def script(model: str, messages: list[dict]) -> str:
        if model == "sub":
            return "sub reply"
        if "kid" in messages[1]["content"]:
            return repl("FINAL(str(forecast('kid')['days']) + llm_query('from a kid'))")
        return repl(
            "hs = [llm_query_async(f'p{i}') for i in range(3)]\n"
            "t = forecast('root')\n"
            "kids = rlm_query_batched(['kid0', 'kid1', 'kid2'])\n"
            "print(wait(hs), kids)"
        )

    with MockLLMServer(scripts=script) as srv:
        _env(monkeypatch, srv)
        rlm = RLM(
            model="openai:root",
            sub_model="openai:sub",
            tools=[forecast],
            budgets={"max_sub_calls": 5, "max_tool_calls": 2},
        )
        ans = rlm.ask(small_corpus, "q?")
        reqs = [r for r in srv.requests if r.status == 200]
    kids = [r for r in reqs if r.model == "root" and "kid" in r.messages[1]["content"] and len(r.messages) == 2]
    sub_lm = [r for r in reqs if r.model == "sub"]
    assert ans.status is Status.BUDGET_EXCEEDED
    assert len(kids) + len(sub_lm) <= 5 and ans.usage.sub_calls <= 5
    assert len(CALLS) <= 2 and ans.usage.tool_calls <= 2


def test_tool_calls_are_replayed_on_resume_never_called_twice(small_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    # turn 1 calls the tool and is committed; the root LM then fails (the execution ends
    # FAILED); resuming replays turn 1 from the trace (the tool's recorded result) and goes on
    CALLS.clear()
    state = {"fail": True}

    def root(model: str, messages: list[dict]) -> str:
        n = sum(m["role"] == "assistant" for m in messages)
        if n == 0:
            return repl("r = forecast('Rome')\nprint(r['city'])")
        if state["fail"]:
            raise KeyError("the root model is down")  # the mock answers 400
        return repl("FINAL(r['city'] + ' ' + str(r['days']))")

    with MockLLMServer(scripts={"root": root}) as srv:
        _env(monkeypatch, srv)
        rlm = RLM(model="openai:root", tools=[forecast])
        first = rlm.ask(small_corpus, "q?")
        assert first.status is Status.FAILED and CALLS == [("Rome", 3)]
        state["fail"] = False
        import asyncio

        again = asyncio.run(rlm.aask(small_corpus, "q?", execution_id=first.execution_id, resume=True))
    assert again.status is Status.COMPLETED, again.error
    assert again.text == "Rome 3" and CALLS == [("Rome", 3)]
    assert again.usage.tool_calls == 1


def test_registry_refuses_bad_names():
    with pytest.raises(ConfigError, match="REPL helper"):
        RLM(model="baseline", tools={"llm_query": forecast})
    with pytest.raises(ConfigError, match="two tools"):
        RLM(model="baseline", tools=[forecast, forecast])


def test_cli_tool_option(small_corpus: Path, tmp_path: Path):
    (tmp_path / "mytools.py").write_text(
        "import os\n\ndef where(tag: str) -> str:\n    '''Says which process ran it.'''\n"
        "    return f'{tag}@{os.getpid()}'\n"
    )
    script = tmp_path / "s.json"
    script.write_text(json.dumps([repl("FINAL(where('x'))")]))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def ask(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "rlmx.cli", "ask", str(small_corpus), "q?", "--model", f"scripted:{script}"]
        return subprocess.run([*argv, *extra], capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)

    proc = ask("--tool", "mytools:where", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["answer"].startswith("x@") and out["answer"] != f"x@{os.getpid()}"
    bad = ask("--tool", "mytools:nosuch")
    assert bad.returncode == 2 and "has no 'nosuch'" in bad.stderr and "Traceback" not in bad.stderr
    bad = ask("--tool", "nocolon")
    assert bad.returncode == 2 and "MODULE:FUNCTION" in bad.stderr


def test_operator_tools_in_the_service_runtime_mode(tmp_path: Path, small_corpus: Path):
    # RLMX_SERVICE_TOOLS: the operator's tools reach every execution; in runtime mode with
    # client-resolved sub-calls, a tool call is still the server's, never a waiting request
    from service_support import auth, client, make_service, ready_session

    CALLS.clear()
    service = make_service(tmp_path / "home", allowed_paths=str(small_corpus), service_tools="test_tools:forecast")
    try:
        key = auth(service.keys.create("acme")[0])
        with client(service) as c:
            s = ready_session(c, key, [{"path": str(small_corpus)}])
            body = c.post(
                f"/v1/sessions/{s['session_id']}/executions/runtime", json={"sub_calls": "client"}, headers=key
            ).json()
            assert "`forecast(city: str, days: int = 3) -> dict`" in body["prompt"]
            steps = f"/v1/executions/{body['execution_id']}/steps"
            step = c.post(steps, json={"code": "r = forecast('Oslo', 1)\nprint(r['city'], r['pid'])"}, headers=key)
            step = step.json()
            assert step["success"] and not step.get("tool_requests"), step
            assert f"Oslo {os.getpid()}" in step["observation"]
            step = c.post(steps, json={"code": "FINAL(r['city'])"}, headers=key).json()
            assert step["status"] == "COMPLETED" and step["answer"] == "Oslo"
    finally:
        service.close()
    assert CALLS == [("Oslo", 1)]


MCP_SERVER = '''
from mcp.server import MCPServer

server = MCPServer("rlmx-test")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool(name="fail-now")
def fail_now() -> str:
    """Always fails."""
    raise ValueError("nope")


server.run("stdio")
'''


def test_mcp_server_tools_through_the_loop_and_the_cli(small_corpus: Path, tmp_path: Path, monkeypatch):
    # the tools of a real stdio MCP server (the official mcp package on both sides)
    from rlmx.engine.mcp_tools import mcp_tools

    srv_file = tmp_path / "mcp_srv.py"
    srv_file.write_text(MCP_SERVER)
    cmd = f"{sys.executable} {srv_file}"
    tools = mcp_tools(cmd)
    assert [(t.name, t.signature) for t in tools] == [("add", "(a: integer, b: integer)"), ("fail_now", "()")]
    code = "try:\n    fail_now()\nexcept RuntimeError as e:\n    err = str(e)\nFINAL(str(add(2, b=40)) + ' ' + err)"
    with MockLLMServer(scripts={"root": _turns(code)}) as srv:
        _env(monkeypatch, srv)
        ans = RLM(model="openai:root", tools=tools, tool_timeout_s=60).ask(small_corpus, "q?")
        system = srv.requests[0].messages[0]["content"]
    assert ans.status is Status.COMPLETED, ans.error
    assert ans.text.startswith("42 ") and "fail-now" in ans.text and ans.usage.tool_calls == 2
    assert "`add(a: integer, b: integer)`: Add two integers." in system

    script = tmp_path / "s.json"
    script.write_text(json.dumps([repl("FINAL(str(add(1, 2)))")]))
    argv = [sys.executable, "-m", "rlmx.cli", "ask", str(small_corpus), "q?", "--model", f"scripted:{script}"]
    proc = subprocess.run([*argv, "--mcp-tools", cmd, "--json", "-q"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["answer"] == "3"
    not_mcp = f"{sys.executable} -c 'pass'"
    bad = subprocess.run([*argv, "--mcp-tools", not_mcp], capture_output=True, text=True, timeout=180)
    assert bad.returncode == 2 and "could not list its tools" in bad.stderr and "Traceback" not in bad.stderr
