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
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import site
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import rlmx
from rlmx.errors import BudgetExceededError, ReplError

from . import guard
from .base import REPL, ContextSpec, StepResult, ToolRequest, ToolResolver
from .policy import SandboxPolicy, is_root, warn_missing
from .snapshot import Sealer, Snapshot, SnapshotError

__all__ = ["LocalREPL", "child_env"]

_LINE_SLACK = 8 << 20  # a protocol line may be 6 bytes per output character (JSON escapes) + this
_BYTES_SLACK = 1 << 20  # raw snapshot bytes accepted beyond the snapshot limit
_MAX_SPAN_EVENTS = 200_000  # span log entries of one step result (the REPL logs at most 150,000)
_QUOTA_CHECK_S = 0.5
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_uid_counter = secrets.randbelow(1 << 16)
_RESTORE_VAR_S = 5.0  # most seconds one small variable may take to restore (also step_timeout_s / 4)
_RESTORE_BYTES_PER_S = 50 << 20  # and one more second per this many bytes of it


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


def _walk(root: str) -> Iterator[tuple[int, str, str, os.stat_result]]:
    """``(dir_fd, name, relative path, lstat)`` of every entry under ``root``, directories
    included, never following a symbolic link: each directory is opened relative to its
    parent's descriptor with ``O_NOFOLLOW``, one descriptor at a time (any depth), and the
    walk climbs back through ``..`` only when that is still the parent it came from — it
    stops early when the tree is moved under it. ``dir_fd`` is valid during the yield."""
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError:
        return
    frames: list[tuple[int, int, list[str], str]] = []  # (st_dev, st_ino, subdirectories left, prefix)
    prefix = ""
    try:
        while True:
            subdirs: list[str] = []
            try:
                with os.scandir(fd) as it:
                    entries = list(it)
            except OSError:
                entries = []
            for e in entries:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    subdirs.append(e.name)
                yield fd, e.name, prefix + e.name, st
            here = os.fstat(fd)
            frames.append((here.st_dev, here.st_ino, subdirs, prefix))
            while True:  # the next directory: a subdirectory left here, or climb
                _dev, _ino, left, pre = frames[-1]
                if left:
                    name = left.pop()
                    try:
                        child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    except OSError:
                        continue
                    os.close(fd)
                    fd, prefix = child, pre + name + "/"
                    break
                frames.pop()
                if not frames:
                    return
                parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = parent
                up = os.fstat(fd)
                if (up.st_dev, up.st_ino) != frames[-1][:2]:
                    return  # moved while being walked: stop rather than leave the tree
    except OSError:
        return
    finally:
        os.close(fd)


def workspace_usage(root: str) -> int:
    """Bytes of disk used under ``root`` (allocated blocks of every entry; symlinks not followed)."""
    return sum(st.st_blocks * 512 for _fd, _name, _rel, st in _walk(root))


def _remove_file(dir_fd: int, name: str, st: os.stat_result) -> bool:
    """Remove the regular file ``name`` of ``dir_fd`` that ``st`` describes, without following
    a link: opened with ``O_NOFOLLOW`` and checked to be that file, then unlinked, and emptied
    through the descriptor only when no other name links to it (so that a process holding it
    open does not keep the space). False when it is gone or no longer that file."""
    try:
        fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        fd = -1  # not writable by the orchestrator (not root): unlink only
    try:
        if fd >= 0:
            now = os.fstat(fd)
            if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                return False
        os.unlink(name, dir_fd=dir_fd)  # removes the name, never what a link points to
        if fd >= 0 and os.fstat(fd).st_nlink == 0:
            os.ftruncate(fd, 0)
        return True
    except OSError:
        return False
    finally:
        if fd >= 0:
            os.close(fd)


def _open_log() -> int:
    """A new file for the REPL's stdout/stderr that no path names (``O_TMPFILE``, or created
    ``O_EXCL``/``O_NOFOLLOW`` and unlinked at once), opened for appending; the orchestrator
    reads it back through this descriptor only."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if tmpfile:
        with contextlib.suppress(OSError):
            return os.open(tempfile.gettempdir(), flags | tmpfile, 0o600)
    fd, path = tempfile.mkstemp(prefix="rlmx-repl-log-")
    try:
        os.unlink(path)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
    except OSError:
        os.close(fd)
        raise
    return fd


class _Broken(Exception):
    """The worker died or broke the protocol during a step."""


class _Violation(_Broken):
    """The worker sent a message it must not send (oversized, malformed, unexpected bytes):
    it is stopped."""


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
        self._log_fd: int | None = None  # the current process's stdout/stderr (see _open_log)
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
                note, dropped = await self._restore("resumed")
                self._pending_notes += [f"[rlmx: {note}]", *dropped]

    async def close(self) -> None:
        """Stop the process (politely, then by force) and remove the workspace."""
        if self._proc is not None and self._writer is not None:
            with contextlib.suppress(Exception):
                await self._send({"type": "shutdown"})
                assert self._reader is not None
                await asyncio.wait_for(self._reader.read(), 2)
        await self._teardown()
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None
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
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None
        self._log_fd = _open_log()  # never a path in the workspace: the sandbox writes there
        parent, child = socket.socketpair()
        try:
            self._proc = await self._launch(child, self._log_fd)
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        self._reader, self._writer = await asyncio.open_connection(sock=parent, limit=self._line_limit())
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

    def _restore_limit(self, size: int) -> float:
        """Seconds one variable of ``size`` bytes may take to restore: a share of the step
        timeout (a quarter, at most :data:`_RESTORE_VAR_S`) plus time for its bytes."""
        return min(self.step_timeout_s / 4, _RESTORE_VAR_S) + size / _RESTORE_BYTES_PER_S

    async def _restore(self, how: str) -> tuple[str, list[str]]:
        """Send the last snapshot to the (fresh) process, one variable at a time; returns a
        note for the model and the notes naming the variables dropped.

        Unpickling runs model-made code: each variable's restore is bounded
        (:meth:`_restore_limit`) and the whole restore by the step timeout. A variable whose
        restore fails, runs past its limit, kills the process or gets a malformed answer is
        dropped from the snapshot; when the process had to be stopped, a fresh one restores
        the variables before it again and goes on with the rest. Raises ReplError only when
        no process can be started."""
        snap = self._snapshot
        if snap is None:
            return f"the REPL was {how}; there was no saved state to restore", []
        try:
            self.sealer.verify(snap)
        except SnapshotError as e:
            self._snapshot = None
            return f"the REPL was {how}; its saved state was NOT restored: {e}; it starts empty", []
        lost = ""
        if snap.unsaved:
            lost = "; lost (they could not be saved): " + ", ".join(
                f"{k} ({v})" for k, v in sorted(snap.unsaved.items())
            )
        pending = sorted(snap.vars)
        if not pending:
            return f"the REPL was {how}; no variables to restore{lost}", []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.step_timeout_s
        restored: list[str] = []
        failed: dict[str, str] = {}
        while pending:
            name, data = pending[0], snap.vars[pending[0]]
            left = deadline - loop.time()
            if left <= 0:
                for n in pending:
                    failed[n] = f"the restore ran past the step timeout of {self.step_timeout_s:g} s"
                break
            limit = min(left, self._restore_limit(len(data)))
            reason = None
            try:
                await self._send({"type": "restore", "vars": [[name, len(data)]]}, [data])
                msg = await asyncio.wait_for(self._recv(), limit)
                if msg.get("type") != "restored":
                    raise _Violation("unexpected answer to restore")
            except TimeoutError:
                reason = f"its restore ran past {limit:.3g} s and was stopped"
            except _Violation as e:
                reason = f"the REPL process broke the protocol restoring it: {e}"
            except (_Broken, OSError) as e:
                reason = f"the REPL process died restoring it ({type(e).__name__})"
            pending.pop(0)
            if reason is not None:  # the process is stopped: a fresh one restores the others
                failed[name] = reason
                await self._teardown()
                await self._spawn()
                pending, restored = restored + pending, []
                continue
            # the answer comes from a process that has just unpickled model-made bytes: untrusted
            raw_restored, raw_failed = msg.get("restored"), msg.get("failed")
            if isinstance(raw_restored, list) and name in raw_restored:
                restored.append(name)
            else:
                why = raw_failed.get(name) if isinstance(raw_failed, dict) else None
                failed[name] = str(why)[:500] if why is not None else "not restored"
        if failed:  # not in the namespace any more: not in the snapshot either
            self._snapshot = self.sealer.apply(snap, snap.turn, [], sorted(failed), snap.unsaved)
        restored.sort()
        note = (
            f"the REPL was {how} and restored to its state after turn {snap.turn}: {', '.join(restored) or 'nothing'}"
        )
        if failed:
            note += "; not restored: " + ", ".join(sorted(failed))
        self._variables = [n for n in restored if not n.startswith("_")]
        dropped = []
        if failed:
            items = ", ".join(f"{k} ({v})" for k, v in sorted(failed.items()))
            dropped = [
                f"[rlmx: dropped from the REPL's state because they could not be restored: {items}; "
                "define them again if you need them]"
            ]
        return note + lost, dropped

    async def _restart(self, how: str) -> tuple[str, list[str]]:
        """Stop the process, start a fresh one and restore the snapshot (see :meth:`_restore`)."""
        await self._teardown()
        await self._spawn()
        return await self._restore(how)

    def _log_tail(self, chars: int = 2000) -> str:
        """The end of the current process's stdout/stderr, read through the orchestrator's
        own descriptor (never through a path)."""
        fd = self._log_fd
        if fd is None:
            return ""
        try:
            size = os.fstat(fd).st_size
            n = min(size, 4 * chars)
            text = os.pread(fd, n, size - n).decode("utf-8", "replace")
        except OSError:
            return ""
        return text[-chars:].strip() or "(none)"

    def _log_blocks(self) -> int:
        """Bytes of disk used by the output log (counted in the workspace quota)."""
        if self._log_fd is None:
            return 0
        try:
            return os.fstat(self._log_fd).st_blocks * 512
        except OSError:
            return 0

    def _usage(self) -> int:
        return (workspace_usage(self.workspace) if self.workspace else 0) + self._log_blocks()

    def _line_limit(self) -> int:
        """Longest protocol line accepted from the REPL: a step result's output at the worst
        JSON escaping (6 bytes a character) plus slack for the rest of the message."""
        return 6 * max(0, self.output_cap_chars) + _LINE_SLACK

    def _bytes_limit(self) -> int:
        """Most raw bytes accepted with one message (a step's snapshot delta), and the largest
        sealed snapshot kept."""
        pol = self.policy
        return (pol.snapshot_max_mb << 20) + _BYTES_SLACK if pol.snapshots else 0

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
        """The next message from the REPL process. Raises :class:`_Broken` when it exited or
        sent garbage, :class:`_Violation` when the message is over a limit (a line longer
        than :meth:`_line_limit`; raw bytes other than a step result's snapshot, or more than
        :meth:`_bytes_limit`) — nothing over those limits is ever buffered."""
        assert self._reader is not None
        try:
            line = await self._reader.readline()
        except (ValueError, asyncio.LimitOverrunError) as e:
            raise _Violation(f"it sent a message longer than the limit of {self._line_limit():,} bytes") from e
        except OSError as e:
            raise _Broken(f"unreadable message from the REPL process: {e}") from e
        if not line:
            raise _Broken("the REPL process exited")
        try:
            msg = json.loads(line.decode("utf-8", "surrogatepass"))
        except (ValueError, RecursionError) as e:
            raise _Violation(f"malformed message from the REPL process: {str(e)[:200]}") from e
        if not isinstance(msg, dict):
            raise _Violation("malformed message from the REPL process")
        n = msg.pop("_bytes", None)
        if n:
            limit = self._bytes_limit()
            if msg.get("type") != "step_result":
                raise _Violation(f"it sent raw bytes with a {str(msg.get('type'))[:40]!r} message")
            if not isinstance(n, int) or isinstance(n, bool) or n < 0 or n > limit:
                raise _Violation(f"it announced {str(n)[:40]} raw bytes (the snapshot limit allows {limit:,})")
            try:
                msg["_data"] = await self._reader.readexactly(n)
            except (asyncio.IncompleteReadError, OSError) as e:
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
                note, dropped = await self._restore(how)
                self._pending_notes += [f"[rlmx: {note}]", *dropped]
            notes, self._pending_notes = self._pending_notes, []
            rejected = guard.check(code, f"<repl-{turn}>", guard=self.policy.ast_guard)
            if rejected is not None:
                return StepResult(error=rejected, variables=list(self._variables), notes=notes)
            t0 = time.monotonic()
            try:
                result, snap = await self._step(code, turn, resolver, t0)
                kept = self._keep_snapshot(turn, snap) if snap is not None else []
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
            except _QuotaExceeded as q:
                await self._teardown()
                removed = self._enforce_quota(force=True)
                restored, dropped = await self._restart("restarted")
                return StepResult(
                    notes=notes + dropped,
                    error=f"WorkspaceQuotaExceeded: {q}; the step was stopped{removed}; {restored}",
                    duration_s=time.monotonic() - t0,
                    variables=list(self._variables),
                )
            except (_Broken, ValueError, OSError, RecursionError) as e:
                tail = self._log_tail()
                info = await self._teardown()
                if isinstance(e, _Violation):
                    why = f"ReplError: the REPL process broke the sandbox protocol ({e}) and was stopped"
                elif info.get("oom"):
                    why = (
                        f"MemoryError: the REPL process exceeded its memory limit of {self.policy.memory_mb} MB "
                        "and was killed"
                    )
                else:
                    why = (
                        f"ReplError: the REPL process died during the step ({e}; {_describe_exit(info)}; "
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
            notes += kept
            quota = self._enforce_quota()
            if quota and result.final is None:
                result.error = (result.error + "\n" if result.error else "") + quota.lstrip("; ")
            result.notes = notes
            self._variables = list(result.variables)
            return result

    def _keep_snapshot(self, turn: int, snap: dict[str, Any]) -> list[str]:
        """Seal the step's snapshot delta; returns a note naming newly unsaveable variables.
        Raises :class:`_Violation` when the delta is malformed or the sealed snapshot would
        grow past :meth:`_bytes_limit` (the REPL keeps its own total under the limit)."""
        if not self.policy.snapshots:
            return []
        data = snap.get("_data") or b""
        changed_meta, deleted, raw_unsaved = (
            snap.get("changed") or [],
            snap.get("deleted") or [],
            snap.get("unsaved") or {},
        )
        if not (isinstance(changed_meta, list) and isinstance(deleted, list) and isinstance(raw_unsaved, dict)):
            raise _Violation("malformed snapshot")
        changed, pos = [], 0
        for item in changed_meta:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
                raise _Violation("malformed snapshot")
            size = item[1]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or pos + size > len(data):
                raise _Violation("malformed snapshot: sizes do not match its bytes")
            changed.append((item[0], data[pos : pos + size]))
            pos += size
        if pos != len(data) or not all(isinstance(n, str) for n in deleted):
            raise _Violation("malformed snapshot: sizes do not match its bytes")
        unsaved = {str(k): str(v)[:500] for k, v in raw_unsaved.items()}
        sealed = self.sealer.apply(self._snapshot, turn, changed, deleted, unsaved)
        if sealed.size > self._bytes_limit():
            raise _Violation(
                f"its snapshot grew to {sealed.size:,} bytes, past the snapshot limit of "
                f"{self.policy.snapshot_max_mb} MB"
            )
        self._snapshot = sealed
        new = sorted(set(unsaved) - self._unsaved_told)
        self._unsaved_told = set(unsaved)
        if not new:
            return []
        items = ", ".join(f"{k} ({unsaved[k]})" for k in new)
        return [f"[rlmx: not saved in the REPL's snapshot, so lost if the REPL restarts: {items}]"]

    def _enforce_quota(self, *, force: bool = False) -> str:
        """Over the workspace quota (its files and the output log): remove regular files of
        the workspace, largest first, until under it — through directory descriptors, never
        following a link, whatever their times say (the code can set them); an oversized log
        is emptied. Returns a note ('' when within)."""
        ws = self.workspace
        quota = self.policy.workspace_mb << 20
        if ws is None:
            return ""
        sizes: dict[str, tuple[int, int, int]] = {}  # relative path -> (bytes, st_dev, st_ino)
        used = self._log_blocks()
        for _fd, _name, rel, st in _walk(ws):
            used += st.st_blocks * 512
            if stat.S_ISREG(st.st_mode):
                sizes[rel] = (st.st_blocks * 512, st.st_dev, st.st_ino)
        if used <= quota and not force:
            return ""
        # largest first; "" stands for the output log (emptied through its descriptor)
        order = sorted([(b, rel) for rel, (b, _d, _i) in sizes.items()] + [(self._log_blocks(), "")], reverse=True)
        chosen: set[str] = set()
        removed = []
        for size, rel in order:
            if used <= quota:
                break
            used -= size
            if rel:
                chosen.add(rel)
            elif size and self._log_fd is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._log_fd, 0)
                    removed.append(f"the REPL's output log ({size:,} bytes)")
        if chosen:
            for fd, name, rel, st in _walk(ws):
                same = rel in chosen and stat.S_ISREG(st.st_mode) and sizes[rel][1:] == (st.st_dev, st.st_ino)
                if same and _remove_file(fd, name, st):
                    removed.append(f"{rel} ({sizes[rel][0]:,} bytes)")
        more = f" and {len(removed) - 20:,} more" if len(removed) > 20 else ""
        gone = f"; removed from the workspace, largest first: {', '.join(removed[:20])}{more}" if removed else ""
        if force:
            return gone
        return (
            f"; WorkspaceQuotaExceeded: the workspace used more than its quota of {self.policy.workspace_mb} MB{gone}"
        )

    async def _step(
        self, code: str, turn: int, resolver: ToolResolver, t0: float
    ) -> tuple[StepResult, dict[str, Any] | None]:
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
                        if self._usage() > quota:
                            raise _QuotaExceeded(f"the workspace grew past its quota of {self.policy.workspace_mb} MB")
                    continue  # woken (a tool result went back) or timed out: re-check
                msg = read.result()
                if msg.get("type") == "step_result":
                    result = _step_result(msg.get("result"))
                    snap = msg.get("snapshot")
                    if snap is not None and not isinstance(snap, dict):
                        raise _Violation("malformed snapshot")
                    if snap is not None:
                        snap["_data"] = msg.get("_data") or b""
                    elif msg.get("_data"):
                        raise _Violation("raw bytes without a snapshot")
                    return result, snap
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


def _step_result(res: Any) -> StepResult:
    """Validate a step result from the REPL process (untrusted: the shape is checked before
    pydantic sees it, so a crafted one costs little and says little)."""
    if not isinstance(res, dict):
        raise _Violation("malformed step result")
    span_log, variables = res.get("span_log") or [], res.get("variables") or []
    if not isinstance(span_log, list) or len(span_log) > _MAX_SPAN_EVENTS:
        raise _Violation("malformed step result: span log")
    if not isinstance(variables, list) or not all(isinstance(v, str) for v in variables):
        raise _Violation("malformed step result: variables")
    try:
        return StepResult.model_validate(res)
    except ValueError as e:  # pydantic's ValidationError; its text could be huge
        count = e.error_count() if hasattr(e, "error_count") else 1
        raise _Violation(f"malformed step result ({count} validation errors)") from None


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
