"""Issue 9 item 9: the REPL's workspace is walked (quota checks during a step, the quota
after it, removal on close) in a thread, never on the event loop — a large workspace must
not stall every other execution of the process. Real REPL processes; the tool resolver is
the only fake."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rlmx.sandbox import LocalREPL, ToolRequest, steps, workspace
from rlmx.sandbox.testing import spec_from_texts


def test_workspace_walks_run_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    spec = spec_from_texts(tmp_path / "store", {"notes.md": "hello\n"})
    walks: list[tuple[str, bool]] = []  # (what, on the loop's thread)
    box: dict[str, Any] = {}
    real_walk = workspace.walk

    def watched_walk(root: str) -> Iterator[Any]:
        walks.append(("walk", threading.get_ident() == box["loop_thread"]))
        box["loop"].call_soon_threadsafe(box["walked"].set)
        yield from real_walk(root)

    monkeypatch.setattr(workspace, "walk", watched_walk)
    real_rmtree = workspace.shutil.rmtree

    def watched_rmtree(path: str, *args: Any, **kw: Any) -> None:
        walks.append(("rmtree", threading.get_ident() == box["loop_thread"]))
        real_rmtree(path, *args, **kw)

    monkeypatch.setattr(workspace.shutil, "rmtree", watched_rmtree)
    monkeypatch.setattr(steps, "QUOTA_CHECK_S", 0.01)  # quota checks while the tool is pending

    async def resolver(req: ToolRequest) -> Any:
        await box["walked"].wait()  # answered once the step's quota check has walked
        return "ok"

    async def go() -> str:
        box["loop"], box["loop_thread"], box["walked"] = (
            asyncio.get_running_loop(),
            threading.get_ident(),
            asyncio.Event(),
        )
        async with LocalREPL(spec) as repl:
            code = "open('data.bin', 'wb').write(b'x' * 100_000)\nprint(llm_query('q'))"
            result = await repl.run(code, turn=1, resolver=resolver)
        return result.stdout

    assert asyncio.run(go()) == "ok\n"
    # the quota check(s) during the step, the quota after it, the removal on close
    assert [w for w, _ in walks].count("walk") >= 2 and ("rmtree", False) in walks, walks
    assert not [w for w in walks if w[1]], f"walked on the event loop: {walks}"
