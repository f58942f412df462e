"""One step of the REPL, seen from the orchestrator: send the code, serve the tool requests it
makes (sub-calls, search) while the wall clock runs — paused while a tool is pending unless
tool time counts — check the workspace quota every :data:`QUOTA_CHECK_S` (the walk runs in
a thread, never on the event loop), and return the
step result with its snapshot delta. Requests the step leaves unanswered are failed so that
no thread of the code waits for ever.

Each step is bound to a fresh random ``step`` token, sent with ``run`` and echoed by the
REPL in its ``step_result``, so that a message the model's code writes onto the protocol
socket cannot shift the later steps' results: a ``step_result`` with the token of a step
that already ended (the late real result of a step that a forged result ended — its code
can read the token) is dropped; one with any other token is a protocol violation (the
REPL is stopped and restored)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

from rlmx.errors import BudgetExceededError

from .base import StepResult, ToolRequest, ToolResolver
from .protocol import Channel, Violation, step_result

__all__ = ["QUOTA_CHECK_S", "QuotaExceeded", "StepLimits", "run_step"]

QUOTA_CHECK_S = 0.5
_log = logging.getLogger("rlmx.sandbox")


class QuotaExceeded(Exception):
    """The workspace grew past its quota during a step."""


class StepLimits:
    """The limits of one step: ``timeout_s`` wall clock (seconds), ``cpu_s`` CPU (seconds,
    enforced inside the REPL), ``count_tool_time`` (does time waiting for tools count),
    ``max_subcalls`` (None: unlimited), ``quota_mb`` (workspace quota, MB) and ``usage`` (a
    callable returning the workspace's bytes, output log included)."""

    def __init__(
        self,
        *,
        timeout_s: float,
        cpu_s: float,
        count_tool_time: bool,
        max_subcalls: int | None,
        quota_mb: int,
        usage: Callable[[], int],
    ) -> None:
        self.timeout_s = timeout_s
        self.cpu_s = cpu_s
        self.count_tool_time = count_tool_time
        self.max_subcalls = max_subcalls
        self.quota_mb = quota_mb
        self.usage = usage


class _Step:
    """Bookkeeping of one running step: outstanding tool tasks and the paused clock."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.tasks: set[asyncio.Task[None]] = set()
        self.pending = 0
        self.unanswered: set[str] = set()  # request ids not answered yet
        self.paused_at = 0.0
        self.wake = asyncio.Event()
        self.subcalls = 0


async def run_step(
    channel: Channel, code: str, turn: int, resolver: ToolResolver, limits: StepLimits
) -> tuple[StepResult, dict[str, Any] | None]:
    """Run ``code`` as step ``turn`` in the process behind ``channel``; returns the validated
    step result and its snapshot delta (its raw bytes in ``"_data"``; None when snapshots are
    off). Raises TimeoutError past the wall-clock limit, :class:`QuotaExceeded`, and
    :class:`~rlmx.sandbox.protocol.Broken`/``Violation`` or OSError when the process dies or
    breaks the protocol — the caller stops and restores it."""
    loop = asyncio.get_running_loop()
    st = _Step(loop.time() + limits.timeout_s)
    token = secrets.token_hex(16)
    run: dict[str, Any] = {"type": "run", "code": code, "turn": turn, "cpu_s": limits.cpu_s, "step": token}
    if tools := getattr(resolver, "repl_tools", None):  # custom tools' stubs (docs/repl.md)
        run["tools"] = tools
    await channel.send(run)
    read = asyncio.ensure_future(channel.recv())
    next_check = loop.time() + QUOTA_CHECK_S
    quota = limits.quota_mb << 20
    try:
        while True:
            timeout = next_check - loop.time()
            if limits.count_tool_time or st.pending == 0:
                left = st.deadline - loop.time()
                if left <= 0:
                    raise TimeoutError
                timeout = min(timeout, left)
            st.wake.clear()
            wake = asyncio.ensure_future(st.wake.wait())
            done, _ = await asyncio.wait({read, wake}, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
            wake.cancel()
            if read not in done:
                if loop.time() >= next_check:
                    next_check = loop.time() + QUOTA_CHECK_S
                    if await asyncio.to_thread(limits.usage) > quota:  # a workspace walk: off the loop
                        raise QuotaExceeded(f"the workspace grew past its quota of {limits.quota_mb} MB")
                continue  # woken (a tool result went back) or timed out: re-check
            msg = read.result()
            if msg.get("type") == "step_result" and msg.get("step") in channel.ended_steps:
                _log.warning("dropped the late result of an earlier step during step %d (a forged one ended it)", turn)
            elif msg.get("type") == "step_result" and msg.get("step") != token:
                raise Violation("it sent a step result that is not for this step")
            elif msg.get("type") == "step_result":
                result = step_result(msg.get("result"))
                snap = msg.get("snapshot")
                if snap is not None and not isinstance(snap, dict):
                    raise Violation("malformed snapshot")
                if snap is not None:
                    snap["_data"] = msg.get("_data") or b""
                elif msg.get("_data"):
                    raise Violation("raw bytes without a snapshot")
                return result, snap
            if msg.get("type") == "tool_request":
                if st.pending == 0:
                    st.paused_at = loop.time()
                st.pending += 1
                st.unanswered.add(str(msg.get("id")))
                task = asyncio.ensure_future(_serve(channel, msg, resolver, st, limits))
                st.tasks.add(task)
                task.add_done_callback(st.tasks.discard)
            read = asyncio.ensure_future(channel.recv())
    finally:
        channel.ended_steps.append(token)
        read.cancel()
        for task in list(st.tasks):
            task.cancel()
        await asyncio.gather(read, *st.tasks, return_exceptions=True)
        for rid in sorted(st.unanswered):  # unblock threads the code left waiting
            with contextlib.suppress(Exception):
                await channel.send(
                    {
                        "type": "tool_result",
                        "id": rid,
                        "error_type": "ToolError",
                        "error": "the step ended before this request was resolved",
                    }
                )


async def _serve(channel: Channel, msg: dict[str, Any], resolver: ToolResolver, st: _Step, limits: StepLimits) -> None:
    """Resolve one tool request and send its result (value, or error string)."""
    rid = str(msg.get("id"))
    reply: dict[str, Any]
    limit = limits.max_subcalls
    try:  # everything in the request is untrusted: any error becomes the call's error
        payload = msg.get("payload") or {}
        if not isinstance(payload, dict):
            raise TypeError("the request's payload must be an object")
        prompts = payload.get("prompts") if msg.get("kind") == "llm_query_batched" else None
        n = len(prompts) if isinstance(prompts, list) else 1
        if limit is not None and st.subcalls + n > limit:
            raise RuntimeError(
                f"this step reached its limit of {limit} sub-calls (RLMX_SANDBOX_MAX_SUBCALLS_PER_STEP); "
                "end the step and continue in the next one"
            )
        st.subcalls += n
        req = ToolRequest.model_validate({"id": rid, "kind": msg.get("kind"), "payload": payload})
        value = await resolver(req)
        reply = {"type": "tool_result", "id": rid, "value": value}
        json.dumps(value)
    except BudgetExceededError as e:
        reply = {
            "type": "tool_result",
            "id": rid,
            "error": str(e),
            "error_type": "BudgetExceededError",
        }
    except Exception as e:
        reply = {
            "type": "tool_result",
            "id": rid,
            "error": f"{type(e).__name__}: {e}",
            "error_type": "ToolError",
        }
    try:
        await channel.send(reply)
        st.unanswered.discard(rid)
    except (OSError, RuntimeError, AssertionError):
        pass  # the process is gone; the step loop notices
    finally:
        loop = asyncio.get_running_loop()
        st.pending -= 1
        if st.pending == 0 and not limits.count_tool_time:
            st.deadline += loop.time() - st.paused_at
        st.wake.set()
