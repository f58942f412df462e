"""`rlmx mcp --transport stdio` as a process, driven by the official MCP SDK's stdio client:
the tools are listed, a session is created and a question answered (offline baseline model)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters


def _data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return result.structured_content


def test_rlmx_mcp_over_stdio_lists_tools_and_answers(small_corpus: Path, tmp_path: Path):
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "rlmx.cli", "mcp", "--transport", "stdio"],
        env={**os.environ, "RLMX_HOME": str(tmp_path / "mcp-home")},
        cwd=str(tmp_path),
    )

    async def run() -> None:
        async with Client(server, read_timeout_seconds=120) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert {"create_session", "ask", "get_execution", "verify_citations"} <= names
            s = _data(await c.call_tool("create_session", {"paths": [str(small_corpus)]}))
            assert s["status"] == "READY" and s["n_documents"] == 3
            e = _data(
                await c.call_tool(
                    "ask",
                    {
                        "session_id": s["session_id"],
                        "question": "What rebuilt Europe after the war?",
                        "model": "baseline",
                    },
                )
            )
            assert e["status"] == "COMPLETED" and "Marshall Plan" in e["answer"] and e["citations"]
            again = _data(await c.call_tool("get_execution", {"execution_id": e["execution_id"]}))
            assert again["status"] == "COMPLETED" and again["answer"] == e["answer"]

    asyncio.run(asyncio.wait_for(run(), 170))
    assert (tmp_path / "mcp-home" / "rlmx.sqlite").is_file()  # the process used the store it was given
