"""``LocalREPL``: the REPL in a sandboxed local process (DESIGN.md invariant 1).

The REPL process is forked from a pre-warmed zygote (:mod:`rlmx.sandbox.zygote`), or started
as a new interpreter when the zygote is off, and applies every isolation layer the host
allows before it reads the corpus or runs code (:mod:`rlmx.sandbox._layers`: network
namespace, resource limits, a dedicated uid when root, no capabilities, no_new_privs,
Landlock, seccomp; cgroup memory and pids limits from the zygote). It runs with:

* a per-execution workspace as working directory, ``HOME`` and ``TMPDIR``, kept across
  restarts of the same execution and removed on close, with a quota (``workspace_mb``);
* an environment built from scratch (``PATH``, locale, ``TZ=UTC``, ``HOME``, Python flags,
  and ``PYTHONPATH`` only when rlmx is not importable from the interpreter's site-packages)
  — no API key or other variable of the orchestrator reaches it;
* its stdout/stderr in an unlinked file of the orchestrator (no path names it, outside the
  workspace; the tail is reported when the process dies, read back through the
  orchestrator's own descriptor); the protocol uses an inherited socketpair only.

Before a step the code is checked (:mod:`rlmx.sandbox.guard`: syntax, AST guard). After a
step the REPL sends a snapshot of its namespace (pickled inside the sandbox), which this
class seals and keeps as opaque bytes (:mod:`rlmx.sandbox.snapshot`). Every limit feeds back
as an error observation, never as an exception: wall time (the process is killed, a new one
is restored from the last snapshot), CPU per step, memory (``MemoryError``, or the cgroup's
kill followed by a restore), output (head + tail), workspace bytes (the largest files
removed), sub-calls per step (the call fails inside the code).

Everything the REPL process sends or leaves is untrusted: protocol lines are capped (the
output cap's worst-case JSON size plus slack), raw bytes are accepted only with a step
result and up to the snapshot limit, malformed or oversized messages stop the process
(an error for the model, then a restore); the workspace is walked and cleaned through
directory descriptors, never following a symbolic link.

The pieces live in their own modules: :mod:`~rlmx.sandbox.environment` (the child's
environment), :mod:`~rlmx.sandbox.workspace` (walk, usage, quota),
:mod:`~rlmx.sandbox.outputlog` (the output log), :mod:`~rlmx.sandbox.launch` (zygote fork or
new interpreter, cgroup), :mod:`~rlmx.sandbox.protocol` (message framing and validation),
:mod:`~rlmx.sandbox.steps` (the step loop and tool requests) and
:mod:`~rlmx.sandbox.restore` (bounded restores); this class ties them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from typing import Any

from rlmx.errors import ReplError

from . import guard
from .base import REPL, ContextSpec, StepResult, ToolResolver
from .environment import child_env
from .launch import Launched, launch_exec, launch_zygote, worker_argv
from .outputlog import log_blocks, log_tail, open_log
from .policy import SandboxPolicy, is_root, warn_missing
from .protocol import Broken, Channel, Violation, bytes_limit, describe_exit, line_limit, parse_delta
from .restore import restore_snapshot
from .snapshot import Sealer, Snapshot
from .steps import QuotaExceeded, StepLimits, run_step
from .unsaved import UnsavedNotes
from .workspace import enforce_quota, make_workspace, remove_workspace, workspace_usage

__all__ = ["Launched", "LocalREPL", "child_env"]

_Broken, _Violation = Broken, Violation  # the names of earlier versions
_uid_counter = secrets.randbelow(1 << 16)


class LocalREPL(REPL):
    """A REPL in a sandboxed child process (see module doc).

    ``step_timeout_s``: wall-clock limit of one step, in seconds; by default time spent
    waiting for tool results (sub-calls, which have their own timeouts and budgets) does not
    count — ``count_tool_time=True`` makes it count. On timeout the process is killed and a
    new one restored from the last snapshot. ``output_cap_chars``: characters of
    stdout/stderr kept per step (head + tail). ``schema_fields``: the output schema's field
    names, which enable ``SUBMIT``. ``start_timeout_s``: limit for the process to start.
    ``policy``: the :class:`SandboxPolicy` (default: from ``RLMX_SANDBOX_*``).
    ``snapshot``: a :class:`Snapshot` to resume from (sealed with the policy's key).

    ``run`` never raises for errors of the code; ``start``/``run`` raise
    :class:`~rlmx.errors.ReplError` when a process cannot be started (or, hardened, when a
    required layer is missing).
    """

    runner = "local"

    def __init__(
        self,
        spec: ContextSpec,
        *,
        step_timeout_s: float = 120,
        output_cap_chars: int = 2_000_000,
        schema_fields: list[str] | None = None,
        count_tool_time: bool = False,
        start_timeout_s: float = 30,
        policy: SandboxPolicy | None = None,
        snapshot: Snapshot | None = None,
    ) -> None:
        global _uid_counter
        self.spec = spec
        self.step_timeout_s = step_timeout_s
        self.output_cap_chars = output_cap_chars
        self.schema_fields = list(schema_fields) if schema_fields is not None else None
        self.count_tool_time = count_tool_time
        self.start_timeout_s = start_timeout_s
        self.policy = policy if policy is not None else SandboxPolicy()
        key = self.policy.snapshot_key.get_secret_value().encode() if self.policy.snapshot_key else None
        self.sealer = Sealer(key)
        self.layers: dict[str, Any] = {}
        self.workspace: str | None = None
        self._snapshot = snapshot
        self._pending_notes: list[str] = []
        self._unsaved = UnsavedNotes()
        self._variables: list[str] = []
        self._proc: Launched | None = None
        self._log_fd: int | None = None  # the current process's stdout/stderr (see outputlog)
        self._channel: Channel | None = None
        self._lock = asyncio.Lock()
        self.uid: int | None = None
        if is_root() and self.policy.uid_switch:
            _uid_counter += 1
            self.uid = self.policy.uid_base + _uid_counter % max(1, self.policy.uid_count)

    @property
    def pid(self) -> int | None:
        """The REPL process id, or None when not running."""
        return self._proc.pid if self._proc is not None else None

    @property
    def snapshot(self) -> Snapshot | None:
        """The sealed snapshot after the last completed step (persist it to resume)."""
        return self._snapshot

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the REPL process (no-op when running), restoring the snapshot it was given.
        Raises ReplError."""
        if self._proc is None:
            await self._spawn()
            if self._snapshot is not None:
                note, dropped = await self._restore("resumed")
                self._pending_notes += [f"[rlmx: {note}]", *dropped]

    async def close(self) -> None:
        """Stop the process (politely, then by force) and remove the workspace."""
        if self._proc is not None and self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.send({"type": "shutdown"})
                await asyncio.wait_for(self._channel.reader.read(), 2)
        await self._teardown()
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None
        if self.workspace is not None:
            await asyncio.to_thread(remove_workspace, self.workspace)  # a walk: off the event loop
            self.workspace = None

    async def _launch(self, child: socket.socket, log_fd: int) -> Launched:
        """Start the process serving ``child``; its stdout/stderr go to ``log_fd``."""
        if self.policy.zygote:
            return await launch_zygote(self.policy, child, log_fd)
        return await self._exec(worker_argv(child.fileno()), child, log_fd)

    async def _exec(self, argv: list[str], child: socket.socket, log_fd: int) -> Launched:
        """Start ``argv`` as a new process (in a new cgroup when possible). Raises ReplError."""
        assert self.workspace is not None
        return await launch_exec(self.policy, argv, child, log_fd, self.workspace)

    def _init_message(self) -> dict[str, Any]:
        assert self.workspace is not None
        pol = self.policy
        cfg = pol.worker_config(self.workspace, self.uid, pol.cpu_s or self.step_timeout_s)
        return {
            "type": "init",
            "spec": self.spec.model_dump(mode="json"),
            "output_cap": self.output_cap_chars,
            "schema_fields": self.schema_fields,
            "env": child_env(self.workspace),
            "cwd": self.workspace,
            "sandbox": cfg,
            "snapshot_max_bytes": (pol.snapshot_max_mb << 20) if pol.snapshots else None,
        }

    async def _spawn(self) -> None:
        if self.workspace is None:
            self.workspace = make_workspace()
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None
        self._log_fd = open_log()  # never a path in the workspace: the sandbox writes there
        parent, child = socket.socketpair()
        try:
            self._proc = await self._launch(child, self._log_fd)
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        reader, writer = await asyncio.open_connection(sock=parent, limit=self._line_limit())
        self._channel = Channel(reader, writer, self._line_limit(), self._bytes_limit())
        init = self._init_message()
        init["outside"] = self._proc.outside
        try:
            await self._send(init)
            msg = await asyncio.wait_for(self._recv(), self.start_timeout_s)
        except (TimeoutError, Broken, OSError) as e:
            tail = self._log_tail()
            await self._teardown()
            why = "timed out" if isinstance(e, TimeoutError) else "exited"
            raise ReplError(f"the REPL process {why} while starting; its output: {tail}") from e
        if msg.get("type") != "ready":
            await self._teardown()
            raise ReplError(f"the REPL process could not start: {msg.get('error')}")
        self.layers = dict(msg.get("layers") or {})
        missing = warn_missing(self.layers, self.runner)
        if self.policy.hardened:
            required = [m for m in missing if m.split(":")[0] in self.policy.required_layers]
            if required:
                await self._teardown()
                raise ReplError("hardened sandbox: required layers are unavailable: " + "; ".join(required))

    async def _teardown(self) -> dict[str, Any]:
        """Kill and reap the process; returns its exit information."""
        proc, self._proc = self._proc, None
        info: dict[str, Any] = {}
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.writer.close()
            with contextlib.suppress(Exception):
                await channel.writer.wait_closed()
        if proc is not None:
            info = await proc.stop()
        return info

    async def _restore(self, how: str) -> tuple[str, list[str]]:
        """Restore the last snapshot into the (fresh) process, bounded
        (:func:`~rlmx.sandbox.restore.restore_snapshot`); returns a note for the model and
        the notes naming the variables dropped. Raises ReplError when no process starts."""

        def channel() -> Channel:
            if self._channel is None:
                raise Broken("the REPL process is not running")
            return self._channel

        async def respawn() -> None:
            await self._teardown()
            await self._spawn()

        out = await restore_snapshot(
            self._snapshot,
            how,
            sealer=self.sealer,
            step_timeout_s=self.step_timeout_s,
            channel=channel,
            respawn=respawn,
        )
        self._snapshot = out.snapshot
        if out.variables is not None:
            self._variables = out.variables
        return out.note, out.dropped

    async def _restart(self, how: str) -> tuple[str, list[str]]:
        """Stop the process, start a fresh one and restore the snapshot (see :meth:`_restore`)."""
        await self._teardown()
        await self._spawn()
        return await self._restore(how)

    def _log_tail(self, chars: int = 2000) -> str:
        """The end of the current process's stdout/stderr (see :func:`outputlog.log_tail`)."""
        return log_tail(self._log_fd, chars)

    def _usage(self) -> int:
        return (workspace_usage(self.workspace) if self.workspace else 0) + log_blocks(self._log_fd)

    def _line_limit(self) -> int:
        return line_limit(self.output_cap_chars)

    def _bytes_limit(self) -> int:
        return bytes_limit(self.policy.snapshot_max_mb if self.policy.snapshots else None)

    async def _send(self, msg: dict[str, Any], data: list[bytes] | None = None) -> None:
        assert self._channel is not None
        await self._channel.send(msg, data)

    async def _recv(self) -> dict[str, Any]:
        assert self._channel is not None
        return await self._channel.recv()

    # -- steps -----------------------------------------------------------------------------
    async def run(self, code: str, *, turn: int, resolver: ToolResolver) -> StepResult:
        """Run ``code`` as step ``turn``, resolving its tool requests with ``resolver``.
        Returns the StepResult (errors, timeouts and crashes of the code included)."""
        async with self._lock:
            if self._proc is None:
                await self.start()
            elif self._channel is not None and self._channel.reader.at_eof():
                info = await self._teardown()
                await self._spawn()
                how = f"restarted (its process had exited: {describe_exit(info)})"
                note, dropped = await self._restore(how)
                self._pending_notes += [f"[rlmx: {note}]", *dropped]
            notes, self._pending_notes = self._pending_notes + self._unsaved.before(code), []
            rejected = guard.check(code, f"<repl-{turn}>", guard=self.policy.ast_guard)
            if rejected is not None:
                return StepResult(error=rejected, variables=list(self._variables), notes=notes)
            t0 = time.monotonic()
            try:
                result, snap = await self._step(code, turn, resolver)
                if snap is not None:
                    self._keep_snapshot(turn, snap)
            except asyncio.CancelledError:
                await self._teardown()  # the worker is mid-step: the next run starts afresh
                self._pending_notes.append("[rlmx: the previous step was cancelled; the REPL was restarted]")
                raise
            except TimeoutError:
                await self._teardown()
                restored, dropped = await self._restart("restarted")
                return StepResult(
                    notes=notes + dropped,
                    error=(
                        f"TimeoutError: the step exceeded the REPL's wall-clock limit of "
                        f"{self.step_timeout_s:g} s and was stopped; {restored}"
                    ),
                    timed_out=True,
                    duration_s=time.monotonic() - t0,
                    variables=list(self._variables),
                )
            except QuotaExceeded as q:
                await self._teardown()
                removed = await asyncio.to_thread(
                    enforce_quota, self.workspace, self.policy.workspace_mb, self._log_fd, force=True
                )
                restored, dropped = await self._restart("restarted")
                return StepResult(
                    notes=notes + dropped,
                    error=f"WorkspaceQuotaExceeded: {q}; the step was stopped{removed}; {restored}",
                    duration_s=time.monotonic() - t0,
                    variables=list(self._variables),
                )
            except (Broken, ValueError, OSError, RecursionError) as e:
                tail = self._log_tail()
                info = await self._teardown()
                if isinstance(e, Violation):
                    why = f"ReplError: the REPL process broke the sandbox protocol ({e}) and was stopped"
                elif info.get("oom"):
                    why = (
                        f"MemoryError: the REPL process exceeded its memory limit of {self.policy.memory_mb} MB "
                        "and was killed"
                    )
                else:
                    why = (
                        f"ReplError: the REPL process died during the step ({e}; {describe_exit(info)}; "
                        f"its output: {tail})"
                    )
                restored, dropped = await self._restart("restarted")
                return StepResult(
                    notes=notes + dropped,
                    error=f"{why}; {restored}",
                    duration_s=time.monotonic() - t0,
                    variables=list(self._variables),
                )
            result.duration_s = time.monotonic() - t0
            quota = await asyncio.to_thread(enforce_quota, self.workspace, self.policy.workspace_mb, self._log_fd)
            if quota and result.final is None:
                result.error = (result.error + "\n" if result.error else "") + quota.lstrip("; ")
            result.notes = notes
            self._variables = list(result.variables)
            return result

    def _keep_snapshot(self, turn: int, snap: dict[str, Any]) -> None:
        """Seal the step's snapshot delta and note what it could not save (:class:`UnsavedNotes`).
        Raises :class:`~rlmx.sandbox.protocol.Violation` when the delta is malformed or the sealed snapshot would
        grow past :meth:`_bytes_limit` (the REPL keeps its own total under the limit)."""
        if not self.policy.snapshots:
            return
        changed, deleted, unsaved = parse_delta(snap)
        sealed = self.sealer.apply(self._snapshot, turn, changed, deleted, unsaved)
        if sealed.size > self._bytes_limit():
            raise Violation(
                f"its snapshot grew to {sealed.size:,} bytes, past the snapshot limit of "
                f"{self.policy.snapshot_max_mb} MB"
            )
        self._snapshot = sealed
        self._unsaved.saw(unsaved)

    async def _step(self, code: str, turn: int, resolver: ToolResolver) -> tuple[StepResult, dict[str, Any] | None]:
        assert self._channel is not None
        limits = StepLimits(
            timeout_s=self.step_timeout_s,
            cpu_s=self.policy.cpu_s or self.step_timeout_s,
            count_tool_time=self.count_tool_time,
            max_subcalls=self.policy.max_subcalls_per_step,
            quota_mb=self.policy.workspace_mb,
            usage=self._usage,
        )
        return await run_step(self._channel, code, turn, resolver, limits)
