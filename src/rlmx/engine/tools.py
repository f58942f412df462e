"""Custom tools: Python functions exposed to model code by name (docs/repl.md, "Custom tools").

A :class:`ToolRegistry` holds them in the orchestrator's process — they never run in the
sandbox. The REPL gets a stub per tool (its name, signature and docstring, from
:meth:`ToolRegistry.repl_specs`) whose calls come back as ``tool`` requests; the resolver
(:mod:`.resolver`) reserves ``max_tool_calls``, runs the function here with a per-call
timeout (:meth:`ToolRegistry.call`) and records the call in the trace like a sub-call
(kind ``tool``, so that resume replays its recorded result instead of calling it again).
Arguments and results are JSON values only.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["DEFAULT_TOOL_TIMEOUT_S", "Tool", "ToolCallError", "ToolRegistry", "WithReplTools", "load_tool"]

DEFAULT_TOOL_TIMEOUT_S = 60.0
"""Seconds one tool call may take before it fails with a timeout (per call)."""
_DOC_CHARS = 600  # docstring characters shown per tool in the root prompt


class ToolCallError(Exception):
    """A tool call failed (unknown tool, arguments or result not JSON, timeout, the function
    raised): the call raises ``ToolError`` with this text inside the code."""


@dataclass(frozen=True)
class Tool:
    """One registered tool: ``name`` (as model code calls it), the function, its signature
    text (``"(city: str, days: int = 3) -> dict"``) and docstring."""

    name: str
    fn: Callable[..., Any]
    signature: str
    doc: str


def _describe(fn: Callable[..., Any], name: str | None) -> Tool:
    if not callable(fn):
        raise ConfigError(f"a tool must be a function, got {type(fn).__name__}")
    tool_name = str(name or getattr(fn, "__name__", ""))
    if not tool_name.isidentifier() or tool_name.startswith("_"):
        raise ConfigError(f"tool name {tool_name!r} is not a public Python identifier: pass tools={{'name': fn}}")
    try:
        try:  # string annotations (``from __future__ import annotations``) shown as written
            signature = str(inspect.signature(fn, eval_str=True))
        except NameError:
            signature = str(inspect.signature(fn))
    except (TypeError, ValueError):
        signature = "(*args, **kwargs)"
    return Tool(tool_name, fn, signature, inspect.getdoc(fn) or "")


def load_tool(spec: str) -> Callable[..., Any]:
    """The function named by ``"module:function"`` (``--tool`` in the CLI; the module is
    imported from ``sys.path``). Raises ConfigError saying what is wrong."""
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"--tool {spec!r}: expected MODULE:FUNCTION, e.g. --tool mytools:weather")
    try:
        obj: Any = importlib.import_module(module)
    except Exception as e:
        raise ConfigError(f"--tool {spec!r}: cannot import {module!r}: {type(e).__name__}: {e}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"--tool {spec!r}: module {module!r} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"--tool {spec!r}: {attr!r} is not a function")
    return obj


def _json(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value, ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ToolCallError(f"{what} must be JSON values (str, number, bool, None, list, dict): {e}") from None


async def _in_thread(fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    """``fn(*args, **kwargs)`` in a daemon thread of its own: one that outlives its timeout
    never holds up the event loop's shutdown (the default executor's threads would)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not fut.done():
            fut.set_result(value) if ok else fut.set_exception(value)

    def run() -> None:
        try:
            ok, value = True, fn(*args, **kwargs)
        except BaseException as e:  # handed to the awaiting call
            ok, value = False, e
        try:
            loop.call_soon_threadsafe(settle, ok, value)
        except RuntimeError:
            pass  # the loop has closed: nobody waits any more

    threading.Thread(target=run, name="rlmx-tool", daemon=True).start()
    return await fut


class ToolRegistry:
    """The custom tools of an RLM. ``tools``: functions (named by ``__name__``), a
    ``{name: function}`` mapping, or :class:`Tool`s; ``timeout_s``: seconds per call.
    Sync functions run in a worker thread, coroutine functions on the event loop. Raises
    ConfigError for a duplicate or invalid name, or one that shadows a REPL helper."""

    RESERVED = frozenset(
        {
            "context",
            "llm_query",
            "llm_query_batched",
            "llm_query_async",
            "rlm_query",
            "rlm_query_async",
            "rlm_query_batched",
            "wait",
            "FINAL",
            "FINAL_VAR",
            "SUBMIT",
            "SHOW_VARS",
            "print",
        }
    )

    def __init__(
        self,
        tools: Iterable[Callable[..., Any] | Tool] | dict[str, Callable[..., Any]] = (),
        *,
        timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
    ) -> None:
        if timeout_s <= 0:
            raise ConfigError(f"the tool timeout must be positive seconds, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        if isinstance(tools, dict):
            items = [_describe(f, n) for n, f in tools.items()]
        else:
            items = [t if isinstance(t, Tool) else _describe(t, None) for t in tools]
        self.tools: dict[str, Tool] = {}
        for t in items:
            if t.name in self.RESERVED:
                raise ConfigError(f"tool name {t.name!r} is a REPL helper: register it under another name")
            if t.name in self.tools:
                raise ConfigError(f"two tools are named {t.name!r}: pass tools={{'name': fn}} to rename one")
            self.tools[t.name] = t

    def __len__(self) -> int:
        return len(self.tools)

    def repl_specs(self) -> list[dict[str, str]]:
        """What the REPL needs to define the stubs: ``[{"name", "signature", "doc"}]``."""
        return [{"name": t.name, "signature": t.signature, "doc": t.doc} for t in self.tools.values()]

    def prompt_listing(self) -> str:
        """One markdown item per tool: ``name(signature)`` and its docstring (cut to
        ``_DOC_CHARS`` characters)."""
        lines = []
        for t in self.tools.values():
            doc = " ".join(t.doc.split())
            if len(doc) > _DOC_CHARS:
                doc = doc[: _DOC_CHARS - 1] + "…"
            lines.append(f"   - `{t.name}{t.signature}`" + (f": {doc}" if doc else ""))
        return "\n".join(lines)

    async def call(self, name: Any, args: Any, kwargs: Any) -> Any:
        """Run tool ``name`` with JSON ``args`` (a list) and ``kwargs`` (an object); returns
        its JSON result. Raises :class:`ToolCallError` (unknown tool, bad arguments, not
        JSON, timed out after ``timeout_s`` seconds — a sync function's thread cannot be
        stopped and finishes in the background — or the function raised)."""
        tool = self.tools.get(name) if isinstance(name, str) else None
        if tool is None:
            raise ToolCallError(f"no tool named {name!r}; tools: {sorted(self.tools)}")
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ToolCallError(f"{tool.name}: malformed arguments")
        args, kwargs = _json(args, f"{tool.name}'s arguments"), _json(kwargs, f"{tool.name}'s arguments")
        try:
            if inspect.iscoroutinefunction(tool.fn):
                result = await asyncio.wait_for(tool.fn(*args, **kwargs), self.timeout_s)
            else:
                result = await asyncio.wait_for(_in_thread(tool.fn, args, kwargs), self.timeout_s)
        except TimeoutError:
            raise ToolCallError(f"{tool.name} did not answer within {self.timeout_s:g} s") from None
        except Exception as e:
            raise ToolCallError(f"{tool.name} raised {type(e).__name__}: {e}") from None
        return _json(result, f"{tool.name}'s result")


class WithReplTools:
    """A tool resolver (``resolve(ToolRequest) -> Awaitable``) carrying the custom tools'
    specs (``repl_tools``) that a step sends to the REPL for its stubs (a bound method
    cannot carry them: runtime mode's dispatcher is one)."""

    def __init__(self, resolve: Callable[[Any], Awaitable[Any]], repl_tools: list[dict[str, str]] | None) -> None:
        self.resolve = resolve
        self.repl_tools = repl_tools

    async def __call__(self, req: Any) -> Any:
        return await self.resolve(req)
