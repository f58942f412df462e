"""Resume restores the REPL from its stored snapshot (issue 4 durability, issue 3 snapshots);
without a usable snapshot it falls back to replaying the committed turns."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from rlmx import RLM, Status
from rlmx.engine.orchestrator import snapshot_key
from rlmx.lm import ScriptedLM

EID = "exe_resume_test0000000001"


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


async def _interrupted_run(rlm: RLM, corpus: Any) -> None:
    async def script(messages: list[dict[str, str]]) -> str:
        if sum(m["role"] == "assistant" for m in messages) == 0:
            return repl("import random\nx = random.random()\nprint(x)")
        await asyncio.Event().wait()  # the worker dies while waiting for turn 2's root call
        return ""

    rlm._root = ScriptedLM(script)
    task = asyncio.create_task(rlm.aask(corpus, "q?", execution_id=EID))
    while not rlm.store.blobs.exists(snapshot_key(EID, 1)):  # turn 1 and its snapshot are committed
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def _resume(corpus: Any) -> tuple[Any, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    rlm = RLM(model=ScriptedLM([repl("FINAL(str(x))")]), on_event=lambda k, d: events.append({"kind": k, **d}))
    ans = asyncio.run(rlm.aask(corpus, "q?", execution_id=EID, resume=True))
    return ans, [e for e in events if e["kind"] == "execution_resumed"]


@pytest.mark.parametrize("keep_snapshot", [True, False])
def test_resume_from_snapshot_or_replay(small_corpus: Path, keep_snapshot: bool):
    first = RLM(model="baseline")
    corpus = first.ingest(small_corpus)
    asyncio.run(_interrupted_run(first, corpus))
    x = first.store.meta.get_turns(EID)[0]["stdout"].strip()
    assert first.store.blobs.exists(snapshot_key(EID, 1))
    assert first.store.meta.get_execution(EID).status == "CANCELLED"
    if not keep_snapshot:
        first.store.blobs.delete(snapshot_key(EID, 1))
    ans, resumed = _resume(corpus)
    assert ans.status is Status.COMPLETED and ans.execution_id == EID
    if keep_snapshot:  # the REPL came back with turn 1's variables: no code ran again
        assert resumed[0]["restored"] == "snapshot" and ans.text == x
    else:  # turn 1 was replayed: random.random() ran again
        assert resumed[0]["restored"] == "replay" and ans.text != x


def test_tampered_stored_snapshot_falls_back_to_replay(small_corpus: Path):
    first = RLM(model="baseline")
    corpus = first.ingest(small_corpus)
    asyncio.run(_interrupted_run(first, corpus))
    key = snapshot_key(EID, 1)
    data = bytearray(first.store.blobs.get(key))
    data[-1] ^= 0x01  # flip one bit of the pickled variables
    first.store.blobs.put(key, bytes(data))
    ans, resumed = _resume(corpus)
    assert ans.status is Status.COMPLETED
    assert resumed[0]["restored"] == "replay"  # the sealed snapshot was refused, never unpickled
