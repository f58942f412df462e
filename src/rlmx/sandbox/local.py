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
* its stdout/stderr in ``<workspace>/.repl.log`` (the tail is reported when it dies); the
  protocol uses an inherited socketpair only.

Before a step the code is checked (:mod:`rlmx.sandbox.guard`: syntax, AST guard). After a
step the REPL sends a snapshot of its namespace (pickled inside the sandbox), which this
class seals and keeps as opaque bytes (:mod:`rlmx.sandbox.snapshot`). Every limit feeds back
as an error observation, never as an exception: wall time (the process is killed, a new one
is restored from the last snapshot), CPU per step, memory (``MemoryError``, or the cgroup's
kill followed by a restore), output (head + tail), workspace bytes (files of the step removed),
sub-calls per step (the call fails inside the code).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import site
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import rlmx
from rlmx.errors import BudgetExceededError, ReplError

from . import guard
from .base import REPL, ContextSpec, StepResult, ToolRequest, ToolResolver
from .policy import SandboxPolicy, is_root, warn_missing
from .snapshot import Sealer, Snapshot, SnapshotError

__all__ = ["LocalREPL", "child_env"]

_LINE_LIMIT = 1 << 30  # longest protocol line accepted (bytes)
_LOG_NAME = ".repl.log"
_QUOTA_CHECK_S = 0.5
_uid_counter = secrets.randbelow(1 << 16)


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


def workspace_usage(root: str) -> int:
    """Bytes of disk used under ``root`` (allocated blocks; symlinks not followed)."""
    total = 0
    stack = [root]
    while stack:
        d = stack.pop()
        with contextlib.suppress(OSError), os.scandir(d) as it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    else:
                        total += e.stat(follow_symlinks=False).st_blocks * 512
                except OSError:
                    continue
    return total


class _Broken(Exception):
    """The worker died or broke the protocol during a step."""


class _QuotaExceeded(Exception):
    """The workspace grew past its quota during a step."""


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


class Launched:
    """A started REPL process: ``pid`` and what the launcher applied (``outside`` layer
    statuses). :meth:`stop` kills and reaps it: ``{"status", "signal", "oom"}``."""

    def __init__(self, pid: int, outside: dict[str, Any]) -> None:
        self.pid = pid
        self.outside = outside

    async def stop(self) -> dict[str, Any]:
        raise NotImplementedError


class _ZygoteProcess(Launched):
    def __init__(self, zygote: Any, pid: int, outside: dict[str, Any]) -> None:
        super().__init__(pid, outside)
        self.zygote = zygote
        self.result: dict[str, Any] | None = None

    async def stop(self) -> dict[str, Any]:
        if self.result is None:
            try:
                self.result = await asyncio.to_thread(self.zygote.kill, self.pid)
            except Exception as e:
                self.result = {"status": None, "signal": None, "oom": False, "error": str(e)}
        return self.result or {}


class _ExecProcess(Launched):
    def __init__(self, proc: asyncio.subprocess.Process, outside: dict[str, Any], group: Any = None) -> None:
        super().__init__(proc.pid, outside)
        self.proc = proc
        self.group = group

    async def stop(self) -> dict[str, Any]:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, 9)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        rc = await self.proc.wait()
        oom = bool(self.group is not None and self.group.oom_killed())
        if self.group is not None:
            self.group.remove()
            self.group = None
        return {"status": rc if rc >= 0 else None, "signal": -rc if rc < 0 else None, "oom": oom}


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
        self._unsaved_told: set[str] = set()
        self._variables: list[str] = []
        self._proc: Launched | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
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
                self._pending_notes.append(f"[rlmx: {await self._restore('resumed')}]")

    async def close(self) -> None:
        """Stop the process (politely, then by force) and remove the workspace."""
        if self._proc is not None and self._writer is not None:
            with contextlib.suppress(Exception):
                await self._send({"type": "shutdown"})
                assert self._reader is not None
                await asyncio.wait_for(self._reader.read(), 2)
        await self._teardown()
        if self.workspace is not None:
            shutil.rmtree(self.workspace, ignore_errors=True)
            self.workspace = None

    async def _launch(self, child: socket.socket, log_fd: int) -> Launched:
        """Start the process serving ``child``; its stdout/stderr go to ``log_fd``."""
        pol = self.policy
        if pol.zygote:
            from .zygote import Zygote, ZygoteError

            try:
                z = await asyncio.to_thread(Zygote.get, pol.cgroup)
                r = await asyncio.to_thread(
                    z.spawn,
                    child.fileno(),
                    log_fd,
                    pol.cgroup_memory_bytes() if pol.cgroup else None,
                    pol.pids if pol.cgroup else None,
                )
            except ZygoteError as e:
                raise ReplError(f"cannot start the REPL process: {e}") from e
            cg = r.get("cgroup") or {}
            if not pol.cgroup:
                cg = {"active": False, "detail": "disabled by the sandbox policy"}
            return _ZygoteProcess(z, int(r["pid"]), {"cgroup": cg})
        return await self._exec(
            [sys.executable, "-P", "-s", "-m", "rlmx.sandbox.worker", str(child.fileno())], child, log_fd
        )

    async def _exec(self, argv: list[str], child: socket.socket, log_fd: int) -> Launched:
        """Start ``argv`` as a new process (in a new cgroup when possible)."""
        pol = self.policy
        group, cg = None, {"active": False, "detail": "disabled by the sandbox policy"}
        if pol.cgroup:
            parent, why = _cgroup_parent()
            cg = {"active": False, "detail": why}
            if parent is not None:
                try:
                    group = parent.group(f"repl-{secrets.token_hex(4)}", pol.cgroup_memory_bytes(), pol.pids)
                    cg = {
                        "active": True,
                        "detail": f"{why}: memory {pol.cgroup_memory_bytes() >> 20} MB, {pol.pids} tasks",
                    }
                except OSError as e:
                    cg = {"active": False, "detail": f"cannot create the REPL's cgroup: {e}"}
        if group is not None:
            procs = " ".join(f'"{d}/cgroup.procs"' for d in sorted(set(group.dirs.values())))
            argv = ["/bin/sh", "-c", f'for f in {procs}; do echo $$ > "$f" || exit 97; done; exec "$@"', "sh", *argv]
        assert self.workspace is not None
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                cwd=self.workspace,
                env=child_env(self.workspace),
                pass_fds=(child.fileno(),),
                start_new_session=True,
            )
        except OSError as e:
            if group is not None:
                group.remove()
            raise ReplError(f"cannot start the REPL process ({argv[0]}): {e}") from e
        return _ExecProcess(proc, {"cgroup": cg}, group)

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
            self.workspace = tempfile.mkdtemp(prefix="rlmx-repl-")
        parent, child = socket.socketpair()
        log_fd = os.open(os.path.join(self.workspace, _LOG_NAME), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            self._proc = await self._launch(child, log_fd)
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
            os.close(log_fd)
        self._reader, self._writer = await asyncio.open_connection(sock=parent, limit=_LINE_LIMIT)
        init = self._init_message()
        init["outside"] = self._proc.outside
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
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._reader = self._writer = None
        if proc is not None:
            info = await proc.stop()
        return info

    async def _restore(self, how: str) -> str:
        """Send the last snapshot to the (fresh) process; returns a note for the model."""
        snap = self._snapshot
        if snap is None:
            return f"the REPL was {how}; there was no saved state to restore"
        try:
            self.sealer.verify(snap)
        except SnapshotError as e:
            self._snapshot = None
            return f"the REPL was {how}; its saved state was NOT restored: {e}; it starts empty"
        names = sorted(snap.vars)
        lost = ""
        if snap.unsaved:
            lost = "; lost (they could not be saved): " + ", ".join(
                f"{k} ({v})" for k, v in sorted(snap.unsaved.items())
            )
        if not names:
            return f"the REPL was {how}; no variables to restore{lost}"
        try:
            await self._send(
                {"type": "restore", "vars": [[n, len(snap.vars[n])] for n in names]}, [snap.vars[n] for n in names]
            )
            msg = await asyncio.wait_for(self._recv(), self.start_timeout_s)
        except (TimeoutError, _Broken, OSError) as e:
            await self._teardown()
            await self._spawn()
            self._snapshot = None
            return f"the REPL was {how}; restoring its saved state failed ({type(e).__name__}); it starts empty"
        restored = msg.get("restored") or []
        failed = msg.get("failed") or {}
        note = (
            f"the REPL was {how} and restored to its state after turn {snap.turn}: {', '.join(restored) or 'nothing'}"
        )
        if failed:
            note += "; not restored: " + ", ".join(f"{k} ({v})" for k, v in sorted(failed.items()))
        self._variables = [n for n in restored if not n.startswith("_")]
        return note + lost

    async def _restart(self, how: str) -> str:
        await self._teardown()
        await self._spawn()
        return await self._restore(how)

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
    async def _send(self, msg: dict[str, Any], data: list[bytes] | None = None) -> None:
        assert self._writer is not None
        if data:
            msg = {**msg, "_bytes": sum(len(d) for d in data)}
        self._writer.write(json.dumps(msg, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n")
        for d in data or ():
            self._writer.write(d)
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
        n = msg.get("_bytes")
        if n:
            try:
                msg["_data"] = await self._reader.readexactly(int(n))
            except (asyncio.IncompleteReadError, ValueError, OSError) as e:
                raise _Broken(f"truncated message from the REPL process: {e}") from e
        return msg

    # -- steps -----------------------------------------------------------------------------
    async def run(self, code: str, *, turn: int, resolver: ToolResolver) -> StepResult:
        """Run ``code`` as step ``turn``, resolving its tool requests with ``resolver``.
        Returns the StepResult (errors, timeouts and crashes of the code included)."""
        async with self._lock:
            if self._proc is None:
                await self.start()
            elif self._reader is not None and self._reader.at_eof():
                info = await self._teardown()
                await self._spawn()
                how = f"restarted (its process had exited: {_describe_exit(info)})"
                self._pending_notes.append(f"[rlmx: {await self._restore(how)}]")
            notes, self._pending_notes = self._pending_notes, []
            rejected = guard.check(code, f"<repl-{turn}>", guard=self.policy.ast_guard)
            if rejected is not None:
                return StepResult(error=rejected, variables=list(self._variables), notes=notes)
            t0 = time.monotonic()
            try:
                raw, snap = await self._step(code, turn, resolver, t0)
                result = StepResult.model_validate(raw)
            except asyncio.CancelledError:
                await self._teardown()  # the worker is mid-step: the next run starts afresh
                self._pending_notes.append("[rlmx: the previous step was cancelled; the REPL was restarted]")
                raise
            except TimeoutError:
                await self._teardown()
                restored = await self._restart("restarted")
                return StepResult(
                    notes=notes,
                    error=(
                        f"TimeoutError: the step exceeded the REPL's wall-clock limit of "
                        f"{self.step_timeout_s:g} s and was stopped; {restored}"
                    ),
                    timed_out=True,
                    duration_s=time.monotonic() - t0,
                    variables=list(self._variables),
                )
            except _QuotaExceeded as q:
                await self._teardown()
                removed = self._enforce_quota(t0, force=True)
                restored = await self._restart("restarted")
                return StepResult(
                    notes=notes,
                    error=f"WorkspaceQuotaExceeded: {q}; the step was stopped{removed}; {restored}",
                    duration_s=time.monotonic() - t0,
                    variables=list(self._variables),
                )
            except (_Broken, ValueError, OSError) as e:
                tail = self._log_tail()
                info = await self._teardown()
                if info.get("oom"):
                    why = (
                        f"MemoryError: the REPL process exceeded its memory limit of {self.policy.memory_mb} MB "
                        "and was killed"
                    )
                else:
                    why = (
                        f"ReplError: the REPL process died during the step ({e}; {_describe_exit(info)}; "
                        f"its output: {tail})"
                    )
                restored = await self._restart("restarted")
                return StepResult(
                    notes=notes,
                    error=f"{why}; {restored}",
                    duration_s=time.monotonic() - t0,
                    variables=list(self._variables),
                )
            result.duration_s = time.monotonic() - t0
            if snap is not None:
                notes += self._keep_snapshot(turn, snap)
            quota = self._enforce_quota(t0)
            if quota and result.final is None:
                result.error = (result.error + "\n" if result.error else "") + quota.lstrip("; ")
            result.notes = notes
            self._variables = list(result.variables)
            return result

    def _keep_snapshot(self, turn: int, snap: dict[str, Any]) -> list[str]:
        """Seal the step's snapshot delta; returns a note naming newly unsaveable variables."""
        data: bytes = snap.get("_data") or b""
        changed, pos = [], 0
        for name, size in snap.get("changed") or []:
            changed.append((str(name), data[pos : pos + int(size)]))
            pos += int(size)
        unsaved = {str(k): str(v) for k, v in (snap.get("unsaved") or {}).items()}
        self._snapshot = self.sealer.apply(self._snapshot, turn, changed, list(snap.get("deleted") or []), unsaved)
        new = sorted(set(unsaved) - self._unsaved_told)
        self._unsaved_told = set(unsaved)
        if not new:
            return []
        items = ", ".join(f"{k} ({unsaved[k]})" for k in new)
        return [f"[rlmx: not saved in the REPL's snapshot, so lost if the REPL restarts: {items}]"]

    def _enforce_quota(self, since: float, *, force: bool = False) -> str:
        """Over the workspace quota: empty and remove the files written since ``since``
        (monotonic), largest first, until under it. Returns a note ('' when within)."""
        ws = self.workspace
        quota = self.policy.workspace_mb << 20
        if ws is None:
            return ""
        used = workspace_usage(ws)
        if used <= quota and not force:
            return ""
        wall_since = time.time() - (time.monotonic() - since) - 1
        files = []
        for d, _dirs, names in os.walk(ws):
            for n in names:
                p = os.path.join(d, n)
                with contextlib.suppress(OSError):
                    st = os.lstat(p)
                    if st.st_mtime >= wall_since:
                        files.append((st.st_blocks * 512, p))
        removed = []
        for size, p in sorted(files, reverse=True):
            if used <= quota:
                break
            with contextlib.suppress(OSError):
                os.truncate(p, 0)
                if os.path.basename(p) != _LOG_NAME:
                    os.unlink(p)
                used -= size
                removed.append(f"{os.path.relpath(p, ws)} ({size:,} bytes)")
        gone = f"; removed the files it wrote: {', '.join(removed)}" if removed else ""
        if force:
            return gone
        return (
            f"; WorkspaceQuotaExceeded: the workspace used more than its quota of {self.policy.workspace_mb} MB{gone}"
        )

    async def _step(
        self, code: str, turn: int, resolver: ToolResolver, t0: float
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        loop = asyncio.get_running_loop()
        st = _Step(loop.time() + self.step_timeout_s)
        cpu = self.policy.cpu_s or self.step_timeout_s
        await self._send({"type": "run", "code": code, "turn": turn, "cpu_s": cpu})
        read = asyncio.ensure_future(self._recv())
        next_check = loop.time() + _QUOTA_CHECK_S
        quota = self.policy.workspace_mb << 20
        try:
            while True:
                timeout = next_check - loop.time()
                if self.count_tool_time or st.pending == 0:
                    left = st.deadline - loop.time()
                    if left <= 0:
                        raise TimeoutError
                    timeout = min(timeout, left)
                st.wake.clear()
                wake = asyncio.ensure_future(st.wake.wait())
                done, _ = await asyncio.wait(
                    {read, wake}, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED
                )
                wake.cancel()
                if read not in done:
                    if loop.time() >= next_check:
                        next_check = loop.time() + _QUOTA_CHECK_S
                        if self.workspace and workspace_usage(self.workspace) > quota:
                            raise _QuotaExceeded(f"the workspace grew past its quota of {self.policy.workspace_mb} MB")
                    continue  # woken (a tool result went back) or timed out: re-check
                msg = read.result()
                if msg.get("type") == "step_result":
                    res = msg.get("result")
                    if not isinstance(res, dict):
                        raise _Broken("malformed step result")
                    snap = msg.get("snapshot")
                    if isinstance(snap, dict):
                        snap["_data"] = msg.get("_data") or b""
                    return res, snap if isinstance(snap, dict) else None
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
        limit = self.policy.max_subcalls_per_step
        payload = msg.get("payload") or {}
        n = len(payload.get("prompts") or []) if msg.get("kind") == "llm_query_batched" else 1
        try:
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
            await self._send(reply)
            st.unanswered.discard(rid)
        except (OSError, RuntimeError, AssertionError):
            pass  # the process is gone; the step loop notices
        finally:
            loop = asyncio.get_running_loop()
            st.pending -= 1
            if st.pending == 0 and not self.count_tool_time:
                st.deadline += loop.time() - st.paused_at
            st.wake.set()


def _describe_exit(info: dict[str, Any]) -> str:
    if info.get("signal"):
        return f"killed by signal {info['signal']}"
    if info.get("status") is not None:
        return f"exit status {info['status']}"
    return "exit status unknown"


_CG_PARENT: list[Any] = []


def _cgroup_parent() -> tuple[Any, str]:
    """This process's cgroup parent for exec-launched REPLs (made once)."""
    from . import _cgroup

    if not _CG_PARENT:
        _CG_PARENT.append(_cgroup.parent(f"rlmx-{os.getpid()}-exec"))
        if _CG_PARENT[0][0] is not None:
            import atexit

            atexit.register(_CG_PARENT[0][0].remove)
    return _CG_PARENT[0]
