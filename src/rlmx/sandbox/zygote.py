"""The REPL fork server (zygote): ``python -m rlmx.sandbox.zygote FD``.

Starting a Python process and importing what a step needs costs ~0.3 s; forking a process
that already did costs a few milliseconds. The zygote is started once per orchestrator
process with an environment built from scratch (no credential ever enters it), imports the
REPL's modules and libseccomp, and then only forks: each REPL process is a child of it,
which applies its own isolation layers (:mod:`rlmx.sandbox._layers`) and serves the REPL
protocol (:func:`rlmx.sandbox.worker.serve`). The zygote runs model code never and reads no
corpus.

Control protocol over a ``SOCK_SEQPACKET`` socket pair (one JSON object per packet)::

    ← {"op": "hello", "pid": int, "cgroup": {"active": bool, "detail": str}}
    → {"op": "spawn", "memory_bytes": int|null, "pids": int|null}  + fds [channel, log]
    ← {"ok": true, "pid": int, "cgroup": {...}}  or  {"ok": false, "error": str}
    → {"op": "kill", "pid": int}       (SIGKILL if alive, reap, remove its cgroup)
    ← {"ok": true, "status": int|null, "signal": int|null, "oom": bool}

EOF on the control socket (the orchestrator is gone) kills every child and ends the zygote.
:class:`Zygote` is the orchestrator's client.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, ClassVar

from rlmx.errors import ReplError

from .environment import child_env

__all__ = ["Zygote", "ZygoteError", "main"]

_PRELOAD = [
    "rlmx.sandbox.worker",
    "rlmx.sandbox._persist",
    "rlmx.sandbox._layers",
    "rlmx.sandbox._landlock",
    "rlmx.sandbox._seccomp",
    "re",
    "json",
    "math",
    "collections",
    "itertools",
    "functools",
    "statistics",
    "random",
    "datetime",
    "textwrap",
    "string",
    "difflib",
    "heapq",
    "bisect",
    "concurrent.futures",
    "threading",
    "typing",
    "dataclasses",
    "unicodedata",
    "hashlib",
    "base64",
    "csv",
    "io",
    "time",
    "decimal",
    "fractions",
    "pprint",
    "operator",
    "copy",
    "enum",
    "struct",
    "zlib",
    "re2",  # context.grep's regex engine (rlmx.sandbox.regex_engine), when installed
]


class ZygoteError(ReplError):
    """The zygote could not be started or stopped answering (its output is in the message;
    ``RLMX_SANDBOX_ZYGOTE=0`` starts each REPL as a new interpreter instead)."""


# -- server (the zygote process) -------------------------------------------------------------


def _reply(ctl: socket.socket, msg: dict[str, Any]) -> None:
    ctl.send(json.dumps(msg).encode())


def _child(ctl: socket.socket, fds: list[int], zygote_pid: int) -> None:
    code = 70
    try:
        ctl.close()
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        chan, log = fds
        devnull = os.open("/dev/null", os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.dup2(chan, 3)
        os.closerange(4, 1 << 16)
        from .worker import serve

        code = serve(3, outside=None)
    except BaseException:
        with contextlib.suppress(BaseException):
            import traceback

            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _status_of(status: int) -> dict[str, Any]:
    if os.WIFSIGNALED(status):
        return {"status": None, "signal": os.WTERMSIG(status)}
    return {"status": os.WEXITSTATUS(status), "signal": None}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    ctl = socket.socket(fileno=int(argv[1]))
    for name in _PRELOAD:
        with contextlib.suppress(Exception):
            __import__(name)
    from . import _cgroup, _seccomp

    with contextlib.suppress(Exception):
        _seccomp.load_library()
    cg, why = (None, "disabled by the sandbox policy")
    if os.environ.get("RLMX_ZYGOTE_CGROUP") == "1":
        cg, why = _cgroup.parent()
    _reply(ctl, {"op": "hello", "pid": os.getpid(), "cgroup": {"active": cg is not None, "detail": why}})
    children: dict[int, Any] = {}  # pid -> cgroup Group | None
    exited: dict[int, dict[str, Any]] = {}
    n = 0

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            exited[pid] = _status_of(status)

    try:
        while True:
            ready, _, _ = select.select([ctl], [], [], 1.0)
            reap()
            if not ready:
                continue
            try:
                data, fds, _flags, _addr = socket.recv_fds(ctl, 1 << 16, 4)
            except OSError:
                break
            if not data:
                break
            req = json.loads(data)
            if req.get("op") == "spawn":
                n += 1
                group, cg_status = None, {"active": False, "detail": why}
                if cg is not None:
                    try:
                        group = cg.group(f"repl-{n}", req.get("memory_bytes"), req.get("pids"))
                        cg_status = {
                            "active": True,
                            "detail": f"{cg.describe()}: memory {int(req.get('memory_bytes') or 0) >> 20} MB, "
                            f"{req.get('pids')} tasks",
                        }
                    except OSError as e:
                        cg_status = {"active": False, "detail": f"cannot create the REPL's cgroup: {e}"}
                try:
                    pid = os.fork()
                except OSError as e:
                    for fd in fds:
                        os.close(fd)
                    if group is not None:
                        group.remove()
                    _reply(ctl, {"ok": False, "error": f"fork failed: {e}"})
                    continue
                if pid == 0:
                    _child(ctl, fds, os.getppid())
                for fd in fds:
                    os.close(fd)
                if group is not None:
                    try:
                        group.add(pid)
                    except OSError as e:
                        cg_status = {"active": False, "detail": f"cannot join the REPL's cgroup: {e}"}
                children[pid] = group
                _reply(ctl, {"ok": True, "pid": pid, "cgroup": cg_status})
            elif req.get("op") == "kill":
                pid = int(req["pid"])
                if pid not in children:
                    _reply(ctl, {"ok": False, "error": "no such REPL process"})
                    continue
                if pid not in exited:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    end = time.monotonic() + 5
                    while pid not in exited and time.monotonic() < end:
                        try:
                            got, status = os.waitpid(pid, os.WNOHANG)
                        except ChildProcessError:
                            break
                        if got:
                            exited[pid] = _status_of(status)
                        else:
                            time.sleep(0.001)
                group = children.pop(pid)
                info = exited.pop(pid, {"status": None, "signal": None})
                oom = bool(group is not None and group.oom_killed())
                if group is not None:
                    group.remove()
                _reply(ctl, {"ok": True, **info, "oom": oom})
    finally:
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid, group in children.items():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            if group is not None:
                group.remove()
        if cg is not None:
            cg.remove()
    return 0


# -- client (the orchestrator) ---------------------------------------------------------------


def zygote_env(cgroup: bool) -> dict[str, str]:
    """The zygote's whole environment (and so its children's until they set their own)."""
    env = child_env(tempfile.gettempdir())
    env["MALLOC_ARENA_MAX"] = "2"  # keeps thread arenas from reserving address space
    if cgroup:
        env["RLMX_ZYGOTE_CGROUP"] = "1"
    return env


class Zygote:
    """The orchestrator's handle on its fork server (one per process and cgroup setting;
    see :meth:`get`). Thread-safe; calls block for a few milliseconds."""

    _instances: ClassVar[dict[tuple[int, bool], Zygote]] = {}
    _class_lock = threading.Lock()

    def __init__(self, cgroup: bool, start_timeout_s: float = 30) -> None:
        self._lock = threading.Lock()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - kept for the zygote's lifetime
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-s", "-m", "rlmx.sandbox.zygote", str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=zygote_env(cgroup),
                cwd="/",
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        except OSError as e:
            ours.close()
            raise ZygoteError(f"cannot start the REPL zygote ({sys.executable}): {e}") from e
        finally:
            theirs.close()
        self.sock = ours
        self.sock.settimeout(start_timeout_s)
        try:
            hello = json.loads(self.sock.recv(1 << 16) or b"{}")
        except (OSError, ValueError) as e:
            self.close()
            raise ZygoteError(f"the REPL zygote did not start: {e}; its output: {self.output()}") from e
        if hello.get("op") != "hello":
            self.close()
            raise ZygoteError(f"the REPL zygote did not start; its output: {self.output()}")
        self.sock.settimeout(60)
        self.pid = int(hello["pid"])
        self.cgroup: dict[str, Any] = hello.get("cgroup") or {"active": False, "detail": "unknown"}

    @classmethod
    def get(cls, cgroup: bool = True) -> Zygote:
        """This process's zygote, started (again) when needed. Raises ZygoteError."""
        key = (os.getpid(), cgroup)
        with cls._class_lock:
            z = cls._instances.get(key)
            if z is None or z.proc.poll() is not None:
                z = cls._instances[key] = Zygote(cgroup)
            return z

    def output(self) -> str:
        with contextlib.suppress(OSError):
            self._log.seek(0)
            return self._log.read()[-2000:].decode("utf-8", "replace").strip() or "(none)"
        return "(none)"

    def _call(self, msg: dict[str, Any], fds: list[int] | None = None) -> dict[str, Any]:
        with self._lock:
            try:
                data = json.dumps(msg).encode()
                if fds:
                    socket.send_fds(self.sock, [data], fds)
                else:
                    self.sock.send(data)
                reply = self.sock.recv(1 << 16)
            except OSError as e:
                raise ZygoteError(f"the REPL zygote stopped answering: {e}") from e
        if not reply:
            raise ZygoteError(f"the REPL zygote exited; its output: {self.output()}")
        out: dict[str, Any] = json.loads(reply)
        return out

    def spawn(self, channel_fd: int, log_fd: int, memory_bytes: int | None, pids: int | None) -> dict[str, Any]:
        """Fork a REPL process serving ``channel_fd``; returns ``{"pid", "cgroup"}``."""
        r = self._call({"op": "spawn", "memory_bytes": memory_bytes, "pids": pids}, [channel_fd, log_fd])
        if not r.get("ok"):
            raise ZygoteError(str(r.get("error")))
        return r

    def kill(self, pid: int) -> dict[str, Any]:
        """Kill (if alive) and reap a REPL process; ``{"status", "signal", "oom"}``."""
        return self._call({"op": "kill", "pid": pid})

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(Exception):
            self.proc.wait(5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    sys.exit(main())
