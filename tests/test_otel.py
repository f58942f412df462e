"""OpenTelemetry export (issue 12 item 4): a real execution tree (scripted LMs at the LM
boundary; a child RLM through rlm_query) into the SDK's in-memory span exporter, checked
against the spans' tree, the GenAI attributes and the stored trace; and the ``OTEL_*``
variables of a real `rlmx ask` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rlmx import RLM
from rlmx.engine.observers import remove_observer
from rlmx.engine.otel import instrument
from rlmx.engine.trace import load_trace
from rlmx.lm.scripted import ScriptedLM

ROOT = [
    "```repl\nprint(rlm_query('what does the child find?'))\n```",
    "FINAL(child says hello)",  # the child's only turn (same root LM, depth 1)
    "```repl\nprint(llm_query('secret prompt text'))\n```",
    "FINAL(done)",
]


def _run(corpus: Path, capture: bool) -> tuple[list[ReadableSpan], dict[str, Any]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    obs = instrument(provider, capture_content=capture)
    try:
        rlm = RLM(
            model=ScriptedLM(list(ROOT)),
            sub_model=ScriptedLM(["sub answer"], role="sub"),
            budgets={"max_depth": 1},
            cache=False,
        )
        answer = rlm.ask(corpus, "What is there?")
    finally:
        remove_observer(obs)
    assert answer.status.value == "COMPLETED", answer.error
    return list(exporter.get_finished_spans()), load_trace(rlm.store.meta, answer.execution_id)


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def test_spans_follow_the_execution_tree(small_corpus: Path):
    spans, trace = _run(small_corpus, capture=False)
    agents = [s for s in spans if s.name == "invoke_agent rlmx"]
    assert len(agents) == 2
    root = next(s for s in agents if s.attributes["rlmx.depth"] == 0)
    child = next(s for s in agents if s.attributes["rlmx.depth"] == 1)
    assert root.parent is None and root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["rlmx.execution_id"] == trace["execution"]["execution_id"]
    assert root.attributes["rlmx.status"] == "COMPLETED"
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    turns = sorted(_children(spans, root), key=lambda s: s.attributes["rlmx.turn"])
    assert [t.name for t in turns] == ["turn 1", "turn 2", "turn 3"]
    # the child execution hangs under the parent's turn that called rlm_query
    assert child.parent is not None and child.parent.span_id == turns[0].context.span_id
    assert child.attributes["rlmx.execution_id"] == trace["children"][0]["execution"]["execution_id"]
    for t, stored in zip(turns, trace["turns"], strict=True):
        chat = [s for s in _children(spans, t) if s.name.startswith("chat ")]
        root_call = next(s for s in chat if "rlmx.subcall_id" not in s.attributes)
        a = root_call.attributes
        assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "scripted"
        assert a["gen_ai.request.model"] == "scripted"
        assert a["gen_ai.usage.input_tokens"] == stored["input_tokens"] > 0
        assert a["gen_ai.usage.output_tokens"] == stored["output_tokens"]
        assert root_call.start_time == t.start_time and root_call.end_time <= t.end_time
        steps = [s for s in _children(spans, t) if s.name == "execute_tool repl"]
        assert len(steps) == (1 if stored.get("code") else 0)
        for s in steps:
            assert s.attributes["gen_ai.tool.name"] == "repl" and t.start_time <= s.start_time <= s.end_time
    sub = [s for s in _children(spans, turns[1]) if "rlmx.subcall_id" in s.attributes]
    assert len(sub) == 1 and sub[0].attributes["rlmx.subcall_kind"] == "llm_query"
    stored_sub = next(s for s in trace["subcalls"] if s["kind"] == "llm_query")
    assert sub[0].attributes["gen_ai.usage.output_tokens"] == stored_sub["output_tokens"]
    assert sub[0].attributes["rlmx.subcall_id"] == stored_sub["id"]
    for s in spans:  # no prompt or response without the option
        assert "gen_ai.input.messages" not in s.attributes and "gen_ai.output.messages" not in s.attributes
        assert "secret prompt text" not in json.dumps(dict(s.attributes))


def test_content_only_when_asked(small_corpus: Path):
    spans, _ = _run(small_corpus, capture=True)
    sub = next(s for s in spans if s.attributes.get("rlmx.subcall_kind") == "llm_query")
    assert json.loads(sub.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "secret prompt text"}]}
    ]
    assert json.loads(sub.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == "sub answer"
    first = next(s for s in spans if s.name == "chat scripted" and "rlmx.subcall_id" not in s.attributes)
    roles = [m["role"] for m in json.loads(first.attributes["gen_ai.input.messages"])]
    assert roles[0] == "system" and "user" in roles


def test_otel_variables_of_a_real_process(small_corpus: Path, tmp_path: Path):
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["```repl\nprint(len(context))\n```", "FINAL(three)"]), encoding="utf-8")
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "rlmx-test"}
    proc = subprocess.run(
        [sys.executable, "-m", "rlmx.cli", "ask", str(small_corpus), "q?", "--model", f"scripted:{script}", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert '"name": "invoke_agent rlmx"' in proc.stdout and f'"name": "chat {script}"' in proc.stdout
    assert '"service.name": "rlmx-test"' in proc.stdout
    plain = subprocess.run(
        [sys.executable, "-m", "rlmx.cli", "ask", str(small_corpus), "q?", "--model", f"scripted:{script}", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
    )
    assert plain.returncode == 0 and "invoke_agent" not in plain.stdout
