"""Poisoned snapshots (issue 9 item 2): a variable whose unpickling hangs or kills the REPL
process cannot hang the execution. Each variable's restore is bounded (a share of the step
timeout), a variable that cannot be restored is dropped from the snapshot and named in the
step's notes, and the execution goes on with the rest. Real REPL processes, no mocks."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from rlmx.sandbox import ContextSpec, SandboxPolicy, StepResult, ToolRequest, make_repl
from rlmx.sandbox.testing import spec_from_texts

STEP_TIMEOUT_S = 12.0

_POISON = (
    "import os, time\n"
    "class Sleeper:\n"
    "    def __reduce__(self):\n"
    "        return (time.sleep, (3600,))\n"
    "class Exiter:\n"
    "    def __reduce__(self):\n"
    "        return (os._exit, (3,))\n"
)


async def _echo(req: ToolRequest) -> Any:
    return "echo:" + str(req.payload.get("prompt"))


@pytest.fixture
def spec(tmp_path: Path) -> ContextSpec:
    return spec_from_texts(tmp_path / "store", {"notes.md": "The launch code is 7-4-1.\n"})


def _run(spec: ContextSpec, codes: list[str]) -> tuple[list[StepResult], list[float], set[str]]:
    """Run ``codes`` as steps 1..n of one REPL (AST guard off: the code kills its own
    process); returns the results, each step's wall time in seconds, and the names left in
    the sealed snapshot at the end."""

    async def go() -> tuple[list[StepResult], list[float], set[str]]:
        repl = make_repl(spec, policy=SandboxPolicy(ast_guard=False), step_timeout_s=STEP_TIMEOUT_S)
        results, times = [], []
        async with repl:
            for i, code in enumerate(codes):
                t0 = time.monotonic()
                results.append(await repl.run(code, turn=i + 1, resolver=_echo))
                times.append(time.monotonic() - t0)
            assert repl.snapshot is not None
            return results, times, set(repl.snapshot.vars)

    return asyncio.run(asyncio.wait_for(go(), 4 * STEP_TIMEOUT_S))


def _dropped(result: StepResult, name: str) -> list[str]:
    return [n for n in result.notes if "dropped" in n and f"{name} (" in n]


def test_a_variable_whose_restore_hangs_is_dropped_and_named(spec):
    r, times, left = _run(
        spec,
        [_POISON + "p = Sleeper()\nkeep = 41", "os.kill(os.getpid(), 9)", "print(keep + 1, 'p' in dir())"],
    )
    assert r[0].error is None, r[0].error
    assert "died" in str(r[1].error) and "restored to its state after turn 1" in str(r[1].error), r[1].error
    assert _dropped(r[1], "p"), r[1].notes  # named in the observation of the step that restored
    assert times[1] < STEP_TIMEOUT_S / 2, times  # bounded well within the step timeout
    assert r[2].error is None and r[2].stdout == "42 False\n", (r[2].error, r[2].stdout)
    assert "keep" in r[2].variables and "p" not in r[2].variables
    assert "p" not in left and "keep" in left  # dropped from the snapshot: never tried again


def test_a_variable_whose_restore_kills_the_process_is_dropped_and_the_rest_restored(spec):
    r, times, left = _run(
        spec,
        [
            _POISON + "a = [1, 2]\nboom = Exiter()\nz = {'k': 3}\nsnooze = Sleeper()",
            "os.kill(os.getpid(), 9)",
            "print(a, z['k'], 'boom' in dir(), 'snooze' in dir())",
            "os.kill(os.getpid(), 9)",
            "print(len(a))",
        ],
    )
    assert _dropped(r[1], "boom") and _dropped(r[1], "snooze"), r[1].notes
    assert times[1] < STEP_TIMEOUT_S / 2, times
    assert r[2].error is None and r[2].stdout == "[1, 2] 3 False False\n", (r[2].error, r[2].stdout)
    # the next restore has nothing poisoned left: nothing dropped, nothing slow
    assert "restored to its state after turn 3" in str(r[3].error) and not _dropped(r[3], "boom"), r[3]
    assert r[4].stdout == "2\n" and {"a", "z"} <= left and not {"boom", "snooze"} & left


def test_resuming_from_a_poisoned_snapshot_is_bounded_and_names_the_dropped_variable(spec):
    async def go() -> tuple[StepResult, float]:
        policy = SandboxPolicy(ast_guard=False)
        async with make_repl(spec, policy=policy, step_timeout_s=STEP_TIMEOUT_S) as first:
            await first.run(_POISON + "p = Sleeper()\nkeep = 41", turn=1, resolver=_echo)
            snap = first.snapshot
        assert snap is not None and {"p", "keep"} <= set(snap.vars)
        t0 = time.monotonic()
        async with make_repl(spec, policy=policy, step_timeout_s=STEP_TIMEOUT_S, snapshot=snap) as second:
            result = await second.run("print(keep + 1)", turn=2, resolver=_echo)
        return result, time.monotonic() - t0

    result, took = asyncio.run(asyncio.wait_for(go(), 4 * STEP_TIMEOUT_S))
    assert result.error is None and result.stdout == "42\n", (result.error, result.stdout)
    assert any("resumed and restored to its state after turn 1" in n for n in result.notes), result.notes
    assert _dropped(result, "p") and took < STEP_TIMEOUT_S / 2, (result.notes, took)
