"""``LocalREPL``: the REPL in a local child process (DESIGN.md invariant 1, first layer).

The child (:mod:`rlmx.sandbox.worker`, whose docstring specifies the JSON-lines protocol)
runs with:

* a fresh temporary workspace as working directory, ``HOME`` and ``TMPDIR`` (removed on
  close and on every restart);
* an environment built from scratch (``PATH``, locale, ``TZ=UTC``, ``HOME``, Python flags,
  and ``PYTHONPATH`` only when rlmx is not importable from the interpreter's site-packages)
  — no API key or other variable of the orchestrator reaches it;
* ``python -P -s``: neither the workspace nor the user site-packages can shadow modules;
* its stdout/stderr in ``<workspace>/.repl.log`` (the tail is reported when it dies); the
  protocol uses an inherited socketpair only.

This is process separation, not a security boundary: the code can still use the network and
the file system with the orchestrator's user rights. Stronger isolation implements the same
:class:`~rlmx.sandbox.base.REPL` seam.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import site
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import rlmx
from rlmx.errors import BudgetExceededError, ReplError

from .base import REPL, ContextSpec, StepResult, ToolRequest, ToolResolver

__all__ = ["LocalREPL"]

_LINE_LIMIT = 1 << 30  # longest protocol line accepted (bytes)
_LOG_NAME = ".repl.log"


def _import_root() -> str | None:
    """The directory to put on the child's PYTHONPATH, or None when site-packages has rlmx."""
    root = Path(rlmx.__file__).resolve().parent.parent
    sites = {str(Path(p).resolve()) for p in site.getsitepackages()}
    return None if str(root) in sites else str(root)


def child_env(workspace: str) -> dict[str, str]:
    """The REPL process's whole environment (nothing is inherited but ``PATH``)."""
    env = {
        "PATH": os.environ.get("PATH") or os.defpath,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "HOME": workspace,
        "TMPDIR": workspace,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
    }
    root = _import_root()
    if root:
        env["PYTHONPATH"] = root
    return env


class _Broken(Exception):
    """The worker died or broke the protocol during a step."""


class _Step:
    """Bookkeeping of one running step: outstanding tool tasks and the paused clock."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.tasks: set[asyncio.Task[None]] = set()
        self.pending = 0
        self.unanswered: set[str] = set()  # request ids not answered yet
        self.paused_at = 0.0
        self.wake = asyncio.Event()


class LocalREPL(REPL):
    """A REPL in a child process of this one (see module doc).

    ``step_timeout_s``: wall-clock limit of one step, in seconds; by default time spent
    waiting for tool results (sub-calls, which have their own timeouts and budgets) does not
    count — ``count_tool_time=True`` makes it count. On timeout the process is killed and a
    fresh one started (variables are lost). ``output_cap_chars``: characters of
    stdout/stderr kept per step (head + tail). ``schema_fields``: the output schema's field
    names, which enable ``SUBMIT``. ``start_timeout_s``: limit for the process to start.

    ``run`` never raises for errors of the code; ``start``/``run`` raise
    :class:`~rlmx.errors.ReplError` when a process cannot be started.
    """

    def __init__(
        self,
        spec: ContextSpec,
        *,
        step_timeout_s: float = 120,
        output_cap_chars: int = 2_000_000,
        schema_fields: list[str] | None = None,
        count_tool_time: bool = False,
        start_timeout_s: float = 30,
    ) -> None:
        self.spec = spec
        self.step_timeout_s = step_timeout_s
        self.output_cap_chars = output_cap_chars
        self.schema_fields = list(schema_fields) if schema_fields is not None else None
        self.count_tool_time = count_tool_time
        self.start_timeout_s = start_timeout_s
        self.workspace: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        """The REPL process id, or None when not running."""
        return self._proc.pid if self._proc is not None else None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the REPL process (no-op when running). Raises ReplError."""
        if self._proc is None:
            await self._spawn()

    async def close(self) -> None:
        """Stop the process (politely, then by force) and remove the workspace."""
        proc = self._proc
        if proc is not None and proc.returncode is None and self._writer is not None:
            with contextlib.suppress(Exception):
                await self._send({"type": "shutdown"})
                await asyncio.wait_for(proc.wait(), 2)
        await self._teardown()

    async def _spawn(self) -> None:
        self.workspace = tempfile.mkdtemp(prefix="rlmx-repl-")
        parent, child = socket.socketpair()
        try:
            with open(os.path.join(self.workspace, _LOG_NAME), "wb") as log:
                self._proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-P",
                    "-s",
                    "-m",
                    "rlmx.sandbox.worker",
                    str(child.fileno()),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    cwd=self.workspace,
                    env=child_env(self.workspace),
                    pass_fds=(child.fileno(),),
                    start_new_session=True,
                )
        except OSError as e:
            parent.close()
            await self._teardown()
            raise ReplError(f"cannot start the REPL process ({sys.executable}): {e}") from e
        finally:
            child.close()
        self._reader, self._writer = await asyncio.open_connection(sock=parent, limit=_LINE_LIMIT)
        init = {
            "type": "init",
            "spec": self.spec.model_dump(mode="json"),
            "output_cap": self.output_cap_chars,
            "schema_fields": self.schema_fields,
        }
        try:
            await self._send(init)
            msg = await asyncio.wait_for(self._recv(), self.start_timeout_s)
        except (TimeoutError, _Broken, OSError) as e:
            tail = self._log_tail()
            await self._teardown()
            why = "timed out" if isinstance(e, TimeoutError) else "exited"
            raise ReplError(f"the REPL process {why} while starting; its output: {tail}") from e
        if msg.get("type") != "ready":
            await self._teardown()
            raise ReplError(f"the REPL process could not open the context: {msg.get('error')}")

    async def _teardown(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._reader = self._writer = None
        if self.workspace is not None:
            shutil.rmtree(self.workspace, ignore_errors=True)
            self.workspace = None

    async def _restart(self) -> None:
        await self._teardown()
        await self._spawn()

    def _log_tail(self, chars: int = 2000) -> str:
        if self.workspace is None:
            return ""
        try:
            with open(os.path.join(self.workspace, _LOG_NAME), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4 * chars))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return text[-chars:].strip() or "(none)"

    # -- protocol --------------------------------------------------------------------------
    async def _send(self, msg: dict[str, Any]) -> None:
        assert self._writer is not None
        data = json.dumps(msg, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"
        self._writer.write(data)
        await self._writer.drain()

    async def _recv(self) -> dict[str, Any]:
        assert self._reader is not None
        try:
            line = await self._reader.readline()
        except (ValueError, asyncio.LimitOverrunError, OSError) as e:
            raise _Broken(f"unreadable message from the REPL process: {e}") from e
        if not line:
            raise _Broken("the REPL process exited")
        try:
            msg = json.loads(line.decode("utf-8", "surrogatepass"))
        except ValueError as e:
            raise _Broken(f"malformed message from the REPL process: {e}") from e
        if not isinstance(msg, dict):
            raise _Broken("malformed message from the REPL process")
        return msg

    # -- steps -----------------------------------------------------------------------------
    async def run(self, code: str, *, turn: int, resolver: ToolResolver) -> StepResult:
        """Run ``code`` as step ``turn``, resolving its tool requests with ``resolver``.
        Returns the StepResult (errors, timeouts and crashes of the code included)."""
        async with self._lock:
            note = ""
            if self._proc is None:
                await self._spawn()
            elif self._proc.returncode is not None:
                code_ = self._proc.returncode
                await self._restart()
                note = (
                    f"[rlmx: the REPL process had exited (status {code_}) and was restarted; "
                    "variables from earlier turns are lost]\n"
                )
            t0 = time.monotonic()
            try:
                raw = await self._step(code, turn, resolver)
                result = StepResult.model_validate(raw)
            except asyncio.CancelledError:
                await self._teardown()  # the worker is mid-step: the next run starts afresh
                raise
            except TimeoutError:
                await self._restart()
                return StepResult(
                    error=(
                        f"TimeoutError: the step exceeded the REPL's wall-clock limit of "
                        f"{self.step_timeout_s:g} s and was stopped; the REPL was restarted; "
                        "variables from earlier turns are lost"
                    ),
                    timed_out=True,
                    duration_s=time.monotonic() - t0,
                )
            except (_Broken, ValueError, OSError) as e:
                status = self._proc.returncode if self._proc is not None else None
                if self._proc is not None and status is None:
                    with contextlib.suppress(TimeoutError):
                        status = await asyncio.wait_for(self._proc.wait(), 1)
                tail = self._log_tail()
                await self._restart()
                return StepResult(
                    error=(
                        f"ReplError: the REPL process died during the step ({e}; exit status "
                        f"{status}; its output: {tail}); a fresh REPL was started; variables "
                        "from earlier turns are lost"
                    ),
                    duration_s=time.monotonic() - t0,
                )
            result.duration_s = time.monotonic() - t0
            if note:
                result.stdout = note + result.stdout
            return result

    async def _step(self, code: str, turn: int, resolver: ToolResolver) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        st = _Step(loop.time() + self.step_timeout_s)
        await self._send({"type": "run", "code": code, "turn": turn})
        read = asyncio.ensure_future(self._recv())
        try:
            while True:
                timeout = None
                if self.count_tool_time or st.pending == 0:
                    timeout = st.deadline - loop.time()
                    if timeout <= 0:
                        raise TimeoutError
                st.wake.clear()
                wake = asyncio.ensure_future(st.wake.wait())
                done, _ = await asyncio.wait({read, wake}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                if read not in done:
                    continue  # woken (a tool result went back) or timed out: re-check
                msg = read.result()
                if msg.get("type") == "step_result":
                    res = msg.get("result")
                    if not isinstance(res, dict):
                        raise _Broken("malformed step result")
                    return res
                if msg.get("type") == "tool_request":
                    if st.pending == 0:
                        st.paused_at = loop.time()
                    st.pending += 1
                    st.unanswered.add(str(msg.get("id")))
                    task = asyncio.ensure_future(self._serve(msg, resolver, st))
                    st.tasks.add(task)
                    task.add_done_callback(st.tasks.discard)
                read = asyncio.ensure_future(self._recv())
        finally:
            read.cancel()
            for task in list(st.tasks):
                task.cancel()
            await asyncio.gather(read, *st.tasks, return_exceptions=True)
            for rid in sorted(st.unanswered):  # unblock threads the code left waiting
                with contextlib.suppress(Exception):
                    await self._send(
                        {
                            "type": "tool_result",
                            "id": rid,
                            "error_type": "ToolError",
                            "error": "the step ended before this request was resolved",
                        }
                    )

    async def _serve(self, msg: dict[str, Any], resolver: ToolResolver, st: _Step) -> None:
        """Resolve one tool request and send its result (value, or error string)."""
        rid = str(msg.get("id"))
        reply: dict[str, Any]
        try:
            req = ToolRequest.model_validate({"id": rid, "kind": msg.get("kind"), "payload": msg.get("payload") or {}})
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
            await self._send(reply)
            st.unanswered.discard(rid)
        except (OSError, RuntimeError):
            pass  # the process is gone; the step loop notices
        finally:
            loop = asyncio.get_running_loop()
            st.pending -= 1
            if st.pending == 0 and not self.count_tool_time:
                st.deadline += loop.time() - st.paused_at
            st.wake.set()
