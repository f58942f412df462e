"""The tools of an MCP server as custom REPL tools (``rlmx ask --mcp-tools CMD|URL``,
``RLM(tools=mcp_tools(...))``; docs/repl.md).

:func:`mcp_tools` connects once (the official ``mcp`` client) to list the server's tools and
returns one :class:`~rlmx.engine.tools.Tool` per tool: its name (characters that are not
allowed in a Python name become ``_``), a signature from its input schema's properties and
its description. Each call connects anew and calls the tool — for a stdio server that
starts the command again (simple, no process to keep alive across event loops; it costs the
server's start-up per call). Calls are custom tool calls like any other: ``max_tool_calls``,
the per-call timeout, JSON arguments, traced.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from ..errors import ConfigError
from .tools import Tool

__all__ = ["mcp_tools"]


def _target(server: str) -> Any:
    from mcp import StdioServerParameters

    if re.match(r"https?://", server):
        return server
    argv = shlex.split(server)
    if not argv:
        raise ConfigError("--mcp-tools: give a command line (e.g. 'python -m myserver') or an http(s) URL")
    return StdioServerParameters(command=argv[0], args=argv[1:])


def _run(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run the coroutine ``make()`` to completion on a loop of its own (callers may already
    be inside one)."""
    box: dict[str, Any] = {}

    def main() -> None:
        try:
            box["value"] = asyncio.run(make())
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=main, name="rlmx-mcp-list", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _result(res: Any) -> Any:
    text = "\n".join(getattr(c, "text", "") for c in res.content or [] if getattr(c, "type", "") == "text")
    if res.is_error:
        raise RuntimeError(text or "the MCP tool reported an error")
    out = res.structured_content
    if isinstance(out, dict) and list(out) == ["result"]:
        return out["result"]  # a plain value, wrapped by the server as {"result": value}
    return out if out is not None else text


def _tool(target: Any, spec: Any) -> Tool:
    from mcp import Client

    props = list((spec.input_schema or {}).get("properties") or {})
    kinds = (spec.input_schema or {}).get("properties") or {}
    required = set((spec.input_schema or {}).get("required") or [])
    parts = [f"{p}: {kinds[p].get('type', 'any')}" + ("" if p in required else " = None") for p in props]
    remote = spec.name

    async def call(*args: Any, **kwargs: Any) -> Any:
        if len(args) > len(props):
            raise TypeError(f"{remote} takes at most {len(props)} positional arguments")
        arguments = {**dict(zip(props, args, strict=False)), **kwargs}
        async with Client(target) as client:
            res = await client.call_tool(remote, arguments)
        return _result(res)  # outside the client's task group: its errors stay plain

    name = re.sub(r"\W", "_", remote)
    if not name.isidentifier():
        name = f"tool_{name}"
    return Tool(name, call, f"({', '.join(parts)})", spec.description or "")


def mcp_tools(server: str) -> list[Tool]:
    """The tools of the MCP server ``server``: a command line started over stdio
    (``"python -m myserver --flag"``) or a Streamable HTTP URL (``http(s)://…``). Raises
    ConfigError when it cannot be reached or lists no tool."""
    from mcp import Client

    target = _target(server)

    async def listing() -> list[Any]:
        async with Client(target) as client:
            return list((await client.list_tools()).tools)

    try:
        specs = _run(listing)
    except Exception as e:
        raise ConfigError(f"--mcp-tools {server!r}: could not list its tools: {type(e).__name__}: {e}") from None
    if not specs:
        raise ConfigError(f"--mcp-tools {server!r}: the server offers no tools")
    return [_tool(target, s) for s in specs]
