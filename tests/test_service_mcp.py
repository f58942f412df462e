"""The MCP server with an in-process MCP client session (official SDK)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import mcp_types as mt
import pytest
from mcp import Client

from rlmx.service.mcp_server import build_mcp_server
from service_support import auth, client, make_service


def _data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return result.structured_content


@pytest.fixture
def scripted_root(tmp_path: Path) -> Path:
    script = tmp_path / "root.json"
    script.write_text(
        json.dumps(
            {
                "root": [
                    "```repl\nr = llm_query('Who rebuilt Europe? ' + context.doc('alpha.txt')[0:47])\nprint(r)\n```",
                    "```repl\nFINAL(r)\n```",
                ],
                "sub": ["(the server's sub-LM: not used when the client resolves sub-calls)"],
            }
        ),
        encoding="utf-8",
    )
    return script


def test_mcp_tools_end_to_end(tmp_path: Path, small_corpus: Path):
    svc = make_service(tmp_path / "home", allowed_paths=str(small_corpus))
    server = build_mcp_server(svc, "local", transport="http")  # paths must be allowed

    async def run() -> None:
        async with Client(server) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert names == {
                "create_session",
                "list_sessions",
                "ask",
                "get_execution",
                "start_runtime",
                "run_step",
                "resolve_tools",
                "get_span",
                "verify_citations",
            }
            denied = await c.call_tool("create_session", {"paths": [str(tmp_path)]})
            assert denied.is_error and "403" in denied.content[0].text
            s = _data(await c.call_tool("create_session", {"paths": [str(small_corpus)]}))
            assert s["status"] == "READY" and s["n_documents"] == 3
            sid = s["session_id"]
            listed = _data(await c.call_tool("list_sessions", {}))
            assert [x["session_id"] for x in listed["sessions"]] == [sid]

            progress: list[tuple[float, float | None, str | None]] = []

            async def on_progress(p: float, total: float | None, msg: str | None) -> None:
                progress.append((p, total, msg))

            e = _data(
                await c.call_tool(
                    "ask",
                    {"session_id": sid, "question": "What rebuilt Europe after the war?", "model": "baseline"},
                    progress_callback=on_progress,
                )
            )
            assert e["status"] == "COMPLETED" and "Marshall Plan" in e["answer"] and e["citations"]
            assert [p[0] for p in progress] == [1.0, 2.0] and progress[0][2] == "turn 1 done"
            v = _data(await c.call_tool("verify_citations", {"citations": e["citations"]}))
            assert v["all_ok"]
            cite = e["citations"][0]
            span = _data(
                await c.call_tool("get_span", {"doc_id": cite["doc_id"], "start": cite["start"], "end": cite["end"]})
            )
            assert span["text"] == cite["text"]
            again = _data(await c.call_tool("get_execution", {"execution_id": e["execution_id"]}))
            assert again["status"] == "COMPLETED"

            rt = _data(await c.call_tool("start_runtime", {"session_id": sid, "sub_calls": "client"}))
            eid = rt["execution_id"]
            step = _data(await c.call_tool("run_step", {"execution_id": eid, "code": "x = llm_query('2+2?')"}))
            assert step["waiting"] and step["tool_requests"][0]["prompt"] == "2+2?"
            step = _data(await c.call_tool("resolve_tools", {"execution_id": eid, "results": {"t1.1": "4"}}))
            assert step["success"]
            step = _data(await c.call_tool("run_step", {"execution_id": eid, "code": "FINAL('it is ' + x)"}))
            assert step["status"] == "COMPLETED" and step["answer"] == "it is 4"
            missing = await c.call_tool("run_step", {"execution_id": "exe_nope", "code": "1"})
            assert missing.is_error and "404" in missing.content[0].text

            # the runtime contract over MCP: prompt and first message, truncated observations,
            # the whole output on request, the closing request after the last turn
            args = {"session_id": sid, "question": "What rebuilt Europe?", "max_turns": 1}
            rt = _data(await c.call_tool("start_runtime", args))
            assert "'alpha.txt'" in rt["prompt"] and "What rebuilt Europe?" in rt["first_message"]
            assert rt["context"]["n_docs"] == 3
            big = {"execution_id": rt["execution_id"], "code": "```repl\nprint('a' * 300_000)\n```"}
            step = _data(await c.call_tool("run_step", {**big, "include": ["stdout"]}))
            assert step["stdout"] == "a" * 300_000 + "\n" and "characters cut" in step["observation"]
            assert step["turns_left"] == 0 and step["final_request"] and step["status"] == "RUNNING"
            step = _data(await c.call_tool("run_step", {**big, "code": "FINAL(context.grep('Marshall Plan')[0].text)"}))
            assert step["status"] == "MAX_TURNS_EXCEEDED" and step["answer"] == "Marshall Plan" and step["citations"]
            assert step.get("stdout") is None

    asyncio.run(run())
    # the same store and tenant over HTTP
    k, _ = svc.keys.create("local")
    with client(svc, worker=False) as c:
        assert len(c.get("/v1/sessions", headers=auth(k)).json()["sessions"]) == 1
    svc.close()


def test_mcp_sampling_resolves_subcalls_with_the_clients_model(tmp_path: Path, small_corpus: Path, scripted_root: Path):
    spec = f"scripted:{scripted_root}"
    svc = make_service(tmp_path / "home", service_models=spec)
    server = build_mcp_server(svc, "local")  # stdio policy: any path when RLMX_ALLOWED_PATHS is empty
    asked: list[str] = []

    async def sampling(context: Any, params: mt.CreateMessageRequestParams) -> mt.CreateMessageResult:
        text = params.messages[-1].content.text  # type: ignore[union-attr]
        asked.append(text)
        return mt.CreateMessageResult(
            role="assistant", content=mt.TextContent(text="The Marshall Plan, said the client."), model="client-llm"
        )

    async def run() -> None:
        async with Client(server, mode="legacy", sampling_callback=sampling) as c:  # a back-channel
            sid = _data(await c.call_tool("create_session", {"paths": [str(small_corpus)]}))["session_id"]
            e = _data(
                await c.call_tool(
                    "ask",
                    {"session_id": sid, "question": "Who rebuilt Europe?", "model": spec, "sub_calls": "client"},
                )
            )
            assert e["status"] == "COMPLETED" and e["answer"] == "The Marshall Plan, said the client.", e["error"]
            assert e["models"]["sub"] == "mcp:client"
            assert [c["doc_name"] for c in e["citations"]] == ["alpha.txt"]  # the span that fed the sub-call
            trace = svc.trace("local", e["execution_id"])
            assert trace["subcalls"][0]["model"].startswith("mcp:")

    asyncio.run(run())
    assert asked == ["Who rebuilt Europe? The Marshall Plan rebuilt Europe after the war."]
    svc.close()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_mcp_sampling_needs_a_capable_client(tmp_path: Path, small_corpus: Path, mode: str):
    """legacy without a sampling callback; auto (2026-07-28) has no back-channel at all."""
    svc = make_service(tmp_path / "home")
    server = build_mcp_server(svc, "local")

    async def sampling(context: Any, params: Any) -> Any:
        raise AssertionError("never asked")

    async def run() -> None:
        cb = sampling if mode == "auto" else None
        async with Client(server, mode=mode, sampling_callback=cb) as c:
            sid = _data(await c.call_tool("create_session", {"paths": [str(small_corpus)]}))["session_id"]
            r = await c.call_tool("ask", {"session_id": sid, "question": "q?", "sub_calls": "client"})
            assert r.is_error and "sampling" in r.content[0].text

    asyncio.run(run())
    svc.close()
