"""LocalREPL with real worker processes; the only fake is the tool resolver (the boundary)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from rlmx.errors import BudgetExceededError, ReplError
from rlmx.sandbox import ContextSpec, LocalREPL, StepResult, ToolRequest
from rlmx.sandbox.local import child_env
from rlmx.sandbox.testing import spec_from_texts

NOTES = "# Notes\nThe launch code is 7-4-1.\nÉcole café naïve.\nGoodbye.\n"
LOG = "".join(f"2024-01-{d:02d} event {d} happened\n" for d in range(1, 29))


class FakeResolver:
    """Records requests; answers ``llm_query`` with ``reply(prompt)``."""

    def __init__(
        self,
        reply: Callable[[str], str] = lambda p: f"echo:{p[:40]}",
        delay: float = 0.0,
        error: BaseException | None = None,
    ) -> None:
        self.requests: list[ToolRequest] = []
        self.reply = reply
        self.delay = delay
        self.error = error
        self.in_flight = 0
        self.peak_in_flight = 0

    async def __call__(self, req: ToolRequest) -> Any:
        self.requests.append(req)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        if self.error is not None:
            raise self.error
        if req.kind == "llm_query_batched":
            return [self.reply(p) for p in req.payload["prompts"]]
        return self.reply(req.payload["prompt"])


@pytest.fixture
def spec(tmp_path: Path) -> ContextSpec:
    return spec_from_texts(tmp_path / "store", {"notes.md": NOTES, "log.txt": LOG})


def session(spec: ContextSpec, steps: Callable[[LocalREPL], Awaitable[Any]], **kw: Any) -> Any:
    async def go() -> Any:
        async with LocalREPL(spec, **kw) as repl:
            return await steps(repl)

    return asyncio.run(go())


async def run(repl: LocalREPL, code: str, turn: int = 1, resolver: Any = None) -> StepResult:
    return await repl.run(code, turn=turn, resolver=resolver or FakeResolver())


def test_variables_persist_and_output_is_echoed(spec):
    async def steps(repl: LocalREPL) -> list[StepResult]:
        return [
            await run(repl, "x = 40\ndef f(a):\n    return a + 2\nprint('hi'); f(x)"),
            await run(repl, "y = f(x) * 2\ny", turn=2),
            await run(repl, "None\nprint(len(context), context[0].name)", turn=3),
            await run(repl, "z = 1\nNone", turn=4),
            await run(repl, "SHOW_VARS()", turn=5),
        ]

    r = session(spec, steps)
    assert r[0].stdout == "hi\n42\n" and r[0].error is None and r[0].variables == ["x", "f"]
    assert r[1].stdout == "84\n" and r[1].variables == ["x", "f", "y"]
    assert r[2].stdout == "2 notes.md\n"
    assert r[3].stdout == ""
    assert "x: int" in r[4].stdout and "f: function" in r[4].stdout


def test_errors_are_observations_and_the_next_step_works(spec):
    async def steps(repl: LocalREPL) -> list[StepResult]:
        return [
            await run(repl, "a = 1\nprint('before')\n{}['missing']"),
            await run(repl, "def f(:\n  pass"),
            await run(repl, "context.grep('(')"),
            await run(repl, "import sys; sys.exit(3)"),
            await run(repl, "a + 1"),
        ]

    r = session(spec, steps)
    assert r[0].stdout == "before\n"
    assert "KeyError: 'missing'" in r[0].error and 'File "<repl-1>", line 3' in r[0].error
    assert "worker.py" not in r[0].error and r[0].variables == ["a"]
    assert "SyntaxError" in r[1].error and "line 1" in r[1].error
    assert "re.PatternError" in r[2].error or "error: missing )" in r[2].error
    assert "context.py" not in r[2].error
    assert "SystemExit: 3" in r[3].error
    assert r[4].stdout == "2\n" and r[4].error is None


def test_timeout_kills_and_restarts(spec):
    async def steps(repl: LocalREPL) -> tuple[Any, ...]:
        await run(repl, "kept = 1")
        pid = repl.pid
        slow = await run(repl, "while True:\n    pass", turn=2)
        after = await run(repl, "print('alive'); 'kept' in dir()", turn=3)
        return slow, after, pid, repl.pid

    slow, after, pid1, pid2 = session(spec, steps, step_timeout_s=1.0)
    assert slow.timed_out and "wall-clock limit of 1 s" in slow.error
    assert "restored to its state after turn 1: kept" in slow.error  # from the snapshot
    assert pid1 != pid2
    assert after.stdout == "alive\nTrue\n" and after.error is None


def test_tool_wait_does_not_count_towards_the_step_limit(spec):
    code = "r = llm_query('slow question')\nprint(r)"

    async def steps(repl: LocalREPL) -> StepResult:
        return await run(repl, code, resolver=FakeResolver(delay=1.5))

    ok = session(spec, steps, step_timeout_s=1.0)
    assert ok.error is None and ok.stdout == "echo:slow question\n" and ok.duration_s >= 1.5
    counted = session(spec, steps, step_timeout_s=1.0, count_tool_time=True)
    assert counted.timed_out


def test_output_cap_keeps_head_and_tail(spec):
    async def steps(repl: LocalREPL) -> StepResult:
        return await run(repl, "print('HEAD' + 'x' * 10_000 + 'TAIL')")

    r = session(spec, steps, output_cap_chars=1000)
    assert r.stdout.startswith("HEADxxx") and r.stdout.endswith("xxTAIL\n")
    assert "9,009 characters dropped by the REPL output cap of 1,000 characters" in r.stdout
    assert len(r.stdout) < 1200


def test_no_credentials_reach_the_repl(spec, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-secret")

    async def steps(repl: LocalREPL) -> tuple[StepResult, str | None]:
        r = await run(
            repl,
            "import os\nprint(sorted(os.environ))\nprint(os.getcwd() == "
            "os.environ['HOME'])\nopen('scratch.txt', 'w').write('x')",
        )
        return r, repl.workspace

    r, workspace = session(spec, steps)
    assert "OPENAI_API_KEY" not in r.stdout and "AWS_SECRET" not in r.stdout
    assert "'PATH'" in r.stdout and "True" in r.stdout
    assert workspace is not None and not os.path.exists(workspace)  # removed on close
    assert "OPENAI_API_KEY" not in child_env("/tmp")


def test_llm_query_round_trips_and_tags_read_spans(spec):
    fake = FakeResolver()

    async def steps(repl: LocalREPL) -> list[StepResult]:
        return [
            await run(
                repl,
                "doc = context['notes.md']\nchunk = doc[8:33]\nother = doc[0:7]",
                turn=1,
                resolver=fake,
            ),
            await run(
                repl,
                "a = llm_query('Where? ' + chunk)\nb = llm_query_batched("
                "['x', 'y ' + chunk, doc[34:51]])\nprint(a); print(b)",
                turn=2,
                resolver=fake,
            ),
        ]

    r = session(spec, steps)
    assert r[1].error is None
    assert (
        r[1].stdout == "echo:Where? The launch code is 7-4-1.\n"
        "['echo:x', 'echo:y The launch code is 7-4-1.', 'echo:École café naïve.']\n"
    )
    kinds = [(q.kind, q.id) for q in fake.requests]
    assert kinds == [("llm_query", "t2.1"), ("llm_query_batched", "t2.2..4")]
    assert fake.requests[0].payload == {
        "prompt": "Where? The launch code is 7-4-1.",
        "model": None,
        "subcall_id": "t2.1",
    }
    assert fake.requests[1].payload["subcall_ids"] == ["t2.2", "t2.3", "t2.4"]
    notes_id = spec.docs[0].doc_id
    events = {(e.kind, e.start, e.end, e.turn): e.subcalls for e in r[1].span_log}
    assert events[("read", 8, 33, 1)] == ["t2.1", "t2.3"]  # an earlier turn's read, re-reported
    assert events[("read", 34, 51, 2)] == ["t2.4"]
    assert ("read", 0, 7, 1) not in events  # not fed to any sub-call
    assert all(e.doc_id == notes_id for e in r[1].span_log)


def test_tool_requests_are_served_concurrently(spec):
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "with ThreadPoolExecutor(4) as ex:\n"
        "    out = list(ex.map(llm_query, ['a', 'b', 'c', 'd']))\n"
        "print(out)"
    )

    fake = FakeResolver(delay=0.5)

    async def steps(repl: LocalREPL) -> StepResult:
        return await run(repl, code, resolver=fake)

    r = session(spec, steps)
    assert r.stdout == "['echo:a', 'echo:b', 'echo:c', 'echo:d']\n"
    assert fake.peak_in_flight > 1  # the four requests overlapped


def test_rlm_query_context_payloads(spec):
    fake = FakeResolver()
    code = (
        "doc = context[0]\nhit = doc.grep('launch code')[0]\npart = doc[8:20]\n"
        "rlm_query('q1')\nrlm_query('q2', context=doc)\nrlm_query('q3', context=hit)\n"
        "rlm_query('q4', context=part)\nrlm_query('q5', context='free text')\n"
        "rlm_query('q6', context=[doc, context[1]])\nprint(rlm_query('q7', context=context))"
    )

    async def steps(repl: LocalREPL) -> StepResult:
        return await run(repl, code, resolver=fake)

    r = session(spec, steps)
    assert r.error is None and r.stdout == "echo:q7\n"
    ctxs = [q.payload["context"] for q in fake.requests]
    assert [q.payload["subcall_id"] for q in fake.requests] == [f"t1.{i}" for i in range(1, 8)]
    assert ctxs[0] is None and ctxs[6] is None
    notes = spec.docs[0]
    start = NOTES.index("launch code")
    assert ctxs[1]["kind"] == "text" and ctxs[1]["docs"][0]["window"] == [0, len(NOTES)]
    assert ctxs[1]["docs"][0]["text_path"] == notes.text_path
    assert ctxs[1]["index_path"] == spec.index_path
    assert ctxs[2]["docs"][0]["window"] == [start, start + len("launch code")]
    assert ctxs[3]["docs"][0]["window"] == [8, 20]
    assert ctxs[4] == {"text": "free text"}
    assert ctxs[5]["kind"] == "corpus" and len(ctxs[5]["docs"]) == 2
    ContextSpec.model_validate(ctxs[5])


def test_final_final_var_and_submit(spec):
    async def steps(repl: LocalREPL) -> list[StepResult]:
        return [
            await run(
                repl,
                "try:\n    FINAL('the answer')\nexcept Exception:\n    print('no')\nprint('unreachable')",
            ),
            await run(repl, "try:\n    FINAL(42)\nexcept:\n    pass\nprint('after')"),
            await run(repl, "result = 'from a variable'\nFINAL_VAR('result')"),
            await run(repl, "FINAL_VAR('nope')"),
            await run(repl, "SUBMIT(answer='x')"),
        ]

    r = session(spec, steps)
    assert r[0].final is not None and r[0].final.kind == "FINAL"
    assert r[0].final.answer == "the answer" and r[0].stdout == "" and r[0].error is None
    assert r[1].final is not None and r[1].final.answer == "42"  # bare except cannot hide it
    assert r[2].final is not None and r[2].final.kind == "FINAL_VAR"
    assert r[2].final.answer == "from a variable"
    assert r[3].final is None and "NameError" in r[3].error
    assert r[4].final is None and "only available when an output schema" in r[4].error

    async def schema_steps(repl: LocalREPL) -> list[StepResult]:
        return [
            await run(repl, "SUBMIT(answer='x')"),
            await run(repl, "SUBMIT(answer='x', confidence={1, 2})"),
            await run(repl, "SUBMIT(answer=context[0][8:19], confidence=0.9)"),
        ]

    s = session(spec, schema_steps, schema_fields=["answer", "confidence"])
    assert s[0].final is None and "missing: ['confidence']" in s[0].error
    assert s[1].final is None and "JSON values" in s[1].error
    assert s[2].final is not None and s[2].final.kind == "SUBMIT"
    assert s[2].final.fields == {"answer": "The launch ", "confidence": 0.9}


def test_citations_are_normalised_to_absolute_spans(tmp_path):
    base = spec_from_texts(tmp_path, {"notes.md": NOTES, "log.txt": LOG})
    windowed = base.docs[1].model_copy(update={"window": (100, 400)})
    spec = base.model_copy(update={"docs": [base.docs[0], windowed]})
    n_id, l_id = base.docs[0].doc_id, base.docs[1].doc_id
    code = (
        "h = context[1].grep('event')[0]\nq = context[0][8:19]\n"
        "FINAL('ok', citations=[h, context[0], {'doc_id': 'notes.md', 'start': 1, 'end': 3}, "
        "(1, 0, 10), ('log.txt', 5, 6), (context[0], 2, 4), q])"
    )

    async def steps(repl: LocalREPL) -> list[StepResult]:
        return [
            await run(repl, code),
            await run(repl, "FINAL('x', citations=[(0, 5, 10_000)])"),
            await run(repl, "FINAL('x', citations=['never read'])"),
            await run(repl, "FINAL('x', citations=[3.5])"),
            await run(repl, "FINAL('x', citations=(0, 1, 2))"),
        ]

    r = session(spec, steps)
    assert r[0].error is None and r[0].final is not None
    hit_at = 100 + LOG[100:400].index("event")
    assert r[0].final.citations == [
        {"doc_id": l_id, "start": hit_at, "end": hit_at + 5},
        {"doc_id": n_id, "start": 0, "end": len(NOTES)},
        {"doc_id": n_id, "start": 1, "end": 3},
        {"doc_id": l_id, "start": 100, "end": 110},
        {"doc_id": l_id, "start": 105, "end": 106},
        {"doc_id": n_id, "start": 2, "end": 4},
        {"doc_id": n_id, "start": 8, "end": 19},
    ]
    assert r[1].final is None and "ValueError" in r[1].error and "outside" in r[1].error
    assert r[2].final is None and "not read from context" in r[2].error
    assert r[3].final is None and "TypeError" in r[3].error
    assert r[4].final.citations == [{"doc_id": n_id, "start": 1, "end": 2}]


def test_resolver_errors_and_budget_stop(spec):
    code = "try:\n    llm_query('x')\nexcept Exception as e:\n    print('caught', type(e).__name__, e)\nprint('after')"

    async def steps(repl: LocalREPL) -> list[StepResult]:
        return [
            await run(repl, code, resolver=FakeResolver(error=ValueError("bad model"))),
            await run(
                repl,
                code,
                resolver=FakeResolver(error=BudgetExceededError("max_sub_calls=3 reached", budget="max_sub_calls")),
            ),
            await run(repl, "print('still alive')"),
        ]

    r = session(spec, steps)
    assert r[0].stdout == "caught ToolError llm_query failed: ValueError: bad model\nafter\n"
    assert r[1].stdout == "" and "BudgetExceededError" in r[1].error
    assert "max_sub_calls=3 reached" in r[1].error and r[1].final is None
    assert r[2].stdout == "still alive\n"


def test_a_dead_process_is_reported_and_replaced(spec):
    async def steps(repl: LocalREPL) -> list[StepResult]:
        return [
            await run(repl, "x = 1"),
            await run(repl, "import os\nprint('bye', flush=True)\nos._exit(7)"),
            await run(repl, "print('x' in dir())"),
        ]

    r = session(spec, steps)
    assert "died" in r[1].error and "exit status 7" in r[1].error
    assert "restored to its state after turn 1: x" in r[1].error
    assert r[2].stdout == "True\n" and r[2].error is None


def test_protocol_is_not_disturbed_by_the_code_writing_to_fd_1(spec):
    async def steps(repl: LocalREPL) -> StepResult:
        return await run(
            repl,
            'import os\nos.write(1, b\'{"type": "step_result"}\\n\')\nprint(\'{"type": "fake"}\')',
        )

    r = session(spec, steps)
    assert r.error is None and r.stdout == '{"type": "fake"}\n'


def test_start_failure_raises_repl_error(tmp_path):
    spec = spec_from_texts(tmp_path, {"a.txt": "hello"})
    bad = spec.model_copy(
        update={"docs": [spec.docs[0].model_copy(update={"text_path": str(tmp_path / "missing.txt")})]}
    )

    async def go() -> None:
        await LocalREPL(bad).start()

    with pytest.raises(ReplError, match=r"missing\.txt"):
        asyncio.run(go())


def test_the_sandbox_worker_modules_stay_light():
    """The worker's own modules import neither pydantic nor asyncio (``rlmx/__init__`` is
    bypassed with a bare package stub: its imports are another module's business)."""
    import rlmx

    pkg_dir = Path(str(rlmx.__file__)).parent
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('rlmx'); pkg.__path__ = [{str(pkg_dir)!r}]\n"
        "sys.modules['rlmx'] = pkg\n"
        "import rlmx.sandbox.worker\n"
        "print(sorted(m for m in ('pydantic', 'asyncio', 'sqlalchemy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-P", "-s", "-c", code],
        env=child_env("/tmp"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_requests_left_open_by_a_finished_step_are_failed(spec):
    # The step ends only after the host has the background thread's request: the main
    # thread's llm_query('sync') is answered once llm_query('slow') has reached the resolver.
    code = (
        "import threading\nbox = {}\n"
        "def bg():\n"
        "    try:\n        box['r'] = llm_query('slow')\n"
        "    except Exception as e:\n        box['e'] = str(e)\n"
        "t = threading.Thread(target=bg)\nt.start()\nllm_query('sync')\nprint('step ends')"
    )

    class HoldSlow(FakeResolver):
        """``slow`` is never answered; ``sync`` is answered once ``slow`` has arrived."""

        def __init__(self) -> None:
            super().__init__()
            self.slow_arrived = asyncio.Event()

        async def __call__(self, req: ToolRequest) -> Any:
            if req.payload.get("prompt") == "slow":
                self.slow_arrived.set()
                await asyncio.Event().wait()  # cancelled when the step ends
            await asyncio.wait_for(self.slow_arrived.wait(), 60)
            return await super().__call__(req)

    async def steps(repl: LocalREPL) -> list[StepResult]:
        return [
            await run(repl, code, resolver=HoldSlow()),
            await run(repl, "t.join(5)\nprint(box)", turn=2),
        ]

    r = session(spec, steps)
    assert r[0].stdout == "step ends\n"
    assert "the step ended before this request was resolved" in r[1].stdout
