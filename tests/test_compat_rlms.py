"""Issue 11 item 8: a drop-in for the official ``rlms`` library. The README's quick start runs
unchanged but for its import line through ``rlmx.compat.rlms``; the official ``answer`` dict
(``answer["content"]``, ``answer["ready"] = True``) ends a run beside FINAL/FINAL_VAR/SUBMIT;
the official constructor's arguments map onto rlmx's budgets and backends. Everything goes
through the real loop, the sandboxed REPL process and the real ``openai`` SDK against a local
OpenAI-compatible server (:class:`rlmx.dev.MockLLMServer`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rlmx import RLM as RlmxRLM
from rlmx import Status
from rlmx.compat.rlms import RLM, RLMChatCompletion, RLMLogger
from rlmx.compat.rlms_backends import compat_prompt
from rlmx.dev import MockLLMServer
from rlmx.errors import BudgetExceededError, ConfigError

# The official README's quick start (github.com/alexzhang13/rlm, README.md "Quick Setup"), verbatim.
OFFICIAL_QUICKSTART = """from rlm import RLM

rlm = RLM(
    backend="openai",
    backend_kwargs={"model_name": "gpt-5-nano"},
    verbose=True,  # For printing to console with rich, disabled by default.
)

print(rlm.completion("Print me the first 100 powers of two, each on a newline.").response)
"""
POWERS = "\n".join(str(2**i) for i in range(100))


def _assistants(messages: list[dict[str, Any]]) -> int:
    return sum(m["role"] == "assistant" for m in messages)


def _quickstart_script(model: str, messages: list[dict[str, Any]]) -> str:
    """A root LM prompted the official way: look at the context, then fill ``answer``."""
    if _assistants(messages) == 0:
        return "Let me look at the prompt first.\n```repl\nprint(context[:200])\n```"
    return '```repl\nanswer["content"] = "\\n".join(str(2**i) for i in range(100))\nanswer["ready"] = True\n```'


def test_the_official_quickstart_runs_unchanged_but_for_its_import(tmp_path: Path):
    script = OFFICIAL_QUICKSTART.replace("from rlm import RLM", "from rlmx.compat.rlms import RLM")
    changed = [a for a, b in zip(OFFICIAL_QUICKSTART.splitlines(), script.splitlines(), strict=True) if a != b]
    assert changed == ["from rlm import RLM"]  # one import line, nothing else
    (tmp_path / "quickstart.py").write_text(script, encoding="utf-8")
    with MockLLMServer(scripts={"gpt-5-nano": _quickstart_script}) as srv:
        env = {**os.environ, "OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-local-test"}
        done = subprocess.run(
            [sys.executable, str(tmp_path / "quickstart.py")],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=90,
        )
        reqs = srv.requests
    assert done.returncode == 0, done.stderr
    assert done.stdout == POWERS + "\n"
    assert "execution_finished" in done.stderr and "status=COMPLETED" in done.stderr  # verbose=True
    assert [r.model for r in reqs] == ["gpt-5-nano", "gpt-5-nano"]
    system = reqs[0].messages[0]
    assert system["role"] == "system" and system["content"].endswith(compat_prompt())
    assert 'answer["ready"] = True' in system["content"]
    # the prompt is the REPL's context: the first step printed it back to the root LM
    assert "Print me the first 100 powers of two, each on a newline." in reqs[1].messages[-1]["content"]


@pytest.fixture()
def local_openai(monkeypatch: pytest.MonkeyPatch):
    """Start a MockLLMServer with ``scripts`` and point OPENAI_BASE_URL at it."""
    servers: list[MockLLMServer] = []

    def start(scripts: Any) -> MockLLMServer:
        srv = MockLLMServer(scripts=scripts)
        srv.start()
        servers.append(srv)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
        return srv

    yield start
    for srv in servers:
        srv.stop()


def test_the_answer_dict_ends_a_run_of_the_default_loop_too(local_openai):
    """In rlmx.RLM (default prompt, which does not mention it) ``answer`` is seeded, hidden from
    the variables listing, keeps its content across steps, and ``ready`` ends the run at the
    end of its step even when the step then raises (as FINAL does)."""
    srv = local_openai(
        {
            "root": [
                '```repl\nanswer["content"] = "from step one"\nx = 1\nprint(sorted(answer))\n```',
                '```repl\nanswer["ready"] = True\nraise ValueError("after ready")\n```',
            ]
        }
    )
    rlm = RlmxRLM(model="openai:root", cache=False)
    ans = rlm.ask(rlm.texts("alpha beta gamma"), "What is in the context?")
    reqs = srv.requests
    assert ans.status is Status.COMPLETED, ans.error
    assert ans.text == "from step one"
    assert len(reqs) == 2
    assert "answer[" not in reqs[0].messages[0]["content"]  # the default prompt stays as it was
    observation = reqs[1].messages[-1]["content"]
    assert "['content', 'ready']" in observation  # seeded as the official library seeds it
    assert "Variables: x" in observation and "answer" not in observation.split("Variables:")[1].split("\n")[0]


def test_a_rebound_answer_dict_and_a_non_string_content_end_the_run(local_openai):
    local_openai({"root": ['```repl\nanswer = {"content": 6 * 7, "ready": True}\n```']})
    rlm = RlmxRLM(model="openai:root", cache=False)
    ans = rlm.ask(rlm.texts("numbers"), "What is six times seven?")
    assert (ans.status, ans.text) == (Status.COMPLETED, "42")


def test_an_answer_that_is_not_ready_does_not_end_the_run(local_openai):
    local_openai(
        {
            "root": [
                '```repl\nanswer["content"] = "draft"\nanswer = "a string now"\n```',
                '```repl\nFINAL("by FINAL")\n```',
            ]
        }
    )
    rlm = RlmxRLM(model="openai:root", cache=False)
    ans = rlm.ask(rlm.texts("text"), "Q?")
    assert (ans.status, ans.text) == (Status.COMPLETED, "by FINAL")


def test_constructor_arguments_map_to_backends_budgets_logger_and_usage(local_openai, tmp_path: Path):
    """other_backends is the sub-LM, root_prompt the question, custom_system_prompt comes
    first, the logger records the trace (and a JSONL file), usage is by model name."""

    def root(model: str, messages: list[dict[str, Any]]) -> str:
        if _assistants(messages) == 0:
            return '```repl\nnote = llm_query("Summarise: " + context[:40])\nprint(note)\n```'
        return '```repl\nanswer["content"] = "summary: " + note\nanswer["ready"] = True\n```'

    srv = local_openai({"root-m": root, "sub-m": lambda model, messages: "a short note"})
    logger = RLMLogger(log_dir=tmp_path / "logs")
    rlm = RLM(
        backend="openai",
        backend_kwargs={"model_name": "root-m", "base_url": srv.base_url, "api_key": "sk-local-test"},
        other_backends=["vllm"],
        other_backend_kwargs=[{"model_name": "sub-m", "base_url": srv.base_url}],
        custom_system_prompt="You are a careful analyst.",
        max_iterations=5,
        max_depth=1,
        logger=logger,
    )
    out = rlm.completion("The quarterly report says revenue grew.", root_prompt="Summarise the report.")
    reqs = srv.requests
    assert isinstance(out, RLMChatCompletion)
    assert out.response == "summary: a short note" and out.error is None
    assert out.root_model == "root-m" and out.prompt == "The quarterly report says revenue grew."
    assert out.execution_time > 0
    assert [r.model for r in reqs] == ["root-m", "sub-m", "root-m"]
    assert reqs[0].messages[0]["content"].startswith("You are a careful analyst.\n\n")
    assert "Summarise the report." in reqs[0].messages[1]["content"]
    assert "Summarise: The quarterly report" in reqs[1].messages[-1]["content"]  # the sub-LM gets no REPL prompt
    usage = out.usage_summary.to_dict()["model_usage_summaries"]
    assert set(usage) == {"root-m", "sub-m"}
    assert (usage["root-m"]["total_calls"], usage["sub-m"]["total_calls"]) == (2, 1)
    assert out.usage_summary.total_input_tokens == sum(
        max(1, (sum(len(m["content"]) for m in r.messages) + 3) // 4) for r in reqs
    )
    assert out.metadata is not None and out.metadata == logger.get_trajectory()
    assert out.metadata["status"] == "COMPLETED" and len(out.metadata["trace"]["turns"]) == 2
    lines = logger.log_file_path.read_text(encoding="utf-8").splitlines()  # type: ignore[union-attr]
    assert len(lines) == 1 and json.loads(lines[0])["execution_id"] == out.metadata["execution_id"]
    assert RLMChatCompletion.from_dict(json.loads(json.dumps(out.to_dict()))).to_dict() == out.to_dict()


REPLY = "```repl\nprint('still looking')\n```"


def _tokens(chars: int) -> int:
    return max(1, (chars + 3) // 4)


def test_budgets_end_runs_as_the_official_library_does(local_openai):
    """max_iterations ends with a closing answer (returned); max_tokens raises
    BudgetExceededError with the partial answer; the server never saw a call past the limit."""
    srv = local_openai({"*": lambda model, messages: REPLY})
    kwargs = {"model_name": "loop-m"}
    out = RLM(backend_kwargs=kwargs, max_iterations=2).completion("some text")
    assert out.error is None and out.usage_summary.model_usage_summaries["loop-m"].total_calls == len(srv.requests)
    srv.clear_requests()
    with pytest.raises(BudgetExceededError) as e:
        RLM(backend_kwargs=kwargs, max_tokens=1500, max_iterations=30).completion("some text " * 300)
    assert e.value.budget == "max_total_tokens" and isinstance(e.value.partial_answer, str)  # type: ignore[attr-defined]
    reqs = [r for r in srv.requests if r.status == 200]
    spent = sum(_tokens(sum(len(m["content"]) for m in r.messages)) + _tokens(len(REPLY)) for r in reqs)
    assert reqs and spent <= 1500  # the server's own count never passes max_tokens


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"environment": "docker"}, "environment='docker'"),
        ({"persistent": True}, "persistent=True"),
        ({"max_errors": 3}, "max_errors"),
        ({"compaction": True}, "compaction"),
        ({"backend": "gemini"}, "backend 'gemini'"),
        ({"backend_kwargs": {}}, "needs 'model_name'"),
        ({"backend_kwargs": {"model_name": "m", "organization": "o"}}, "organization"),
        ({"backend": "vllm"}, "needs backend_kwargs['base_url']"),
        ({"custom_sub_tools": {"f": len}}, "custom_sub_tools"),
        ({"logger": object()}, "RLMLogger"),
        ({"custom_tools": {"data": [1, 2]}}, "not callable"),
    ],
)
def test_what_rlmx_cannot_honour_is_refused_with_a_fix(kwargs: dict[str, Any], needle: str):
    args = {"backend_kwargs": {"model_name": "m"}, **kwargs}
    if args.get("backend") == "vllm":
        args["backend_kwargs"] = {"model_name": "m"}
    with pytest.raises(ConfigError) as e:
        RLM(**args)
    assert needle in str(e.value)


def test_an_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="not_an_option"):
        RLM(backend_kwargs={"model_name": "m"}, not_an_option=1)


def test_custom_tools_reach_model_code_by_their_keys(local_openai):
    """custom_tools become rlmx REPL tools named by their keys (run by the orchestrator, as
    rlmx.RLM(tools=...)); a ``(callable, description)`` entry takes the description."""

    def lookup(key: str) -> str:
        """The stored value of ``key``."""
        return {"capital": "Paris"}[key]

    srv = local_openai({"tool-m": ['```repl\nanswer["content"] = find_value("capital")\nanswer["ready"] = True\n```']})
    tools = {"find_value": (lookup, "Look a stored value up by its key.")}
    out = RLM(backend_kwargs={"model_name": "tool-m"}, custom_tools=tools).completion("capitals")
    assert out.response == "Paris"
    system = srv.requests[0].messages[0]["content"]
    assert "find_value" in system and "Look a stored value up by its key." in system


def test_the_compat_layer_sits_above_the_engine_and_nothing_below_imports_it():
    """rlmx.compat is a caller of rlmx.api (like the CLI): no other module of rlmx imports
    it, and it imports cleanly first in a fresh interpreter."""
    from test_layering import SRC, _imported

    above = ("rlmx.compat",)
    offenders = {
        str(path.relative_to(SRC)): bad
        for path in sorted(SRC.rglob("*.py"))
        if path.relative_to(SRC).parts[0] != "compat"
        and (bad := sorted(n for n in _imported(path) if n in above or n.startswith(tuple(a + "." for a in above))))
    }
    assert not offenders, f"lower layers import the compat layer: {offenders}"
    assert "rlmx.api.RLM" in _imported(SRC / "compat" / "rlms.py")  # the rule sees the compat layer's imports
    code = "import rlmx.compat.rlms as m; assert m.RLM and m.RLMChatCompletion"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
