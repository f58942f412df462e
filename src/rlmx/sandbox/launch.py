"""Starting a REPL process: forked by the pre-warmed zygote (:mod:`rlmx.sandbox.zygote`), or
a new interpreter (``python -P -s -m rlmx.sandbox.worker FD``, or any ``argv`` such as
bubblewrap's) in a new cgroup when the host allows one. Either way it gets only its end of
the protocol socketpair, its output log on stdout/stderr, no stdin, the workspace as working
directory and the environment of :func:`~rlmx.sandbox.environment.child_env`; the layers it
applies itself come later (:mod:`rlmx.sandbox._layers`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sys
from typing import Any

from rlmx.errors import ReplError

from .environment import child_env
from .policy import SandboxPolicy

__all__ = [
    "ExecProcess",
    "Launched",
    "ZygoteProcess",
    "cgroup_parent",
    "launch_exec",
    "launch_zygote",
    "prestart_zygote",
    "worker_argv",
]


class Launched:
    """A started REPL process: ``pid`` and what the launcher applied (``outside`` layer
    statuses). :meth:`stop` kills and reaps it: ``{"status", "signal", "oom"}``."""

    def __init__(self, pid: int, outside: dict[str, Any]) -> None:
        self.pid = pid
        self.outside = outside

    async def stop(self) -> dict[str, Any]:
        """Kill (if alive) and reap the process; ``{"status", "signal", "oom"}``."""
        raise NotImplementedError


class ZygoteProcess(Launched):
    """A REPL process forked by the zygote; the zygote kills and reaps it."""

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


class ExecProcess(Launched):
    """A REPL process started as a new interpreter (in its own cgroup ``group`` when one
    could be made); killed with its process group."""

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


_CG_PARENT: list[Any] = []


def cgroup_parent() -> tuple[Any, str]:
    """This process's cgroup parent for exec-launched REPLs (made once)."""
    from . import _cgroup

    if not _CG_PARENT:
        _CG_PARENT.append(_cgroup.parent(f"rlmx-{os.getpid()}-exec"))
        if _CG_PARENT[0][0] is not None:
            import atexit

            atexit.register(_CG_PARENT[0][0].remove)
    return _CG_PARENT[0]


def worker_argv(fd: int) -> list[str]:
    """The command line of a REPL process started as a new interpreter serving socket ``fd``."""
    return [sys.executable, "-P", "-s", "-m", "rlmx.sandbox.worker", str(fd)]


def prestart_zygote(policy: SandboxPolicy | None = None) -> bool:
    """Start this process's zygote in a background thread, so that its interpreter start
    and imports (~0.3 s of another core) overlap the caller's own start-up (SDK imports,
    opening the store, ingestion) instead of delaying the first REPL. Returns whether it
    started one: only for the ``local`` runner with the zygote on (``policy`` default:
    :class:`SandboxPolicy` from ``RLMX_SANDBOX_*``). Never raises; a failed start is retried,
    and reported, by the first :func:`launch_zygote`."""
    import threading

    from .zygote import Zygote

    try:
        policy = policy if policy is not None else SandboxPolicy()
    except Exception:  # a malformed RLMX_SANDBOX_* variable: reported where the REPL starts
        return False
    if policy.runner != "local" or not policy.zygote:
        return False
    cgroup = policy.cgroup

    def start() -> None:
        with contextlib.suppress(Exception):
            Zygote.get(cgroup)

    threading.Thread(target=start, name="rlmx-zygote-prestart", daemon=True).start()
    return True


async def launch_zygote(policy: SandboxPolicy, child: socket.socket, log_fd: int) -> Launched:
    """Fork a REPL process from this process's zygote, serving ``child`` with stdout/stderr
    on ``log_fd``, in a cgroup with the policy's memory and pids limits when enabled. Raises
    ReplError when the zygote cannot be started or refuses (see its output in the message)."""
    from .zygote import Zygote, ZygoteError

    try:
        z = await asyncio.to_thread(Zygote.get, policy.cgroup)
        r = await asyncio.to_thread(
            z.spawn,
            child.fileno(),
            log_fd,
            policy.cgroup_memory_bytes() if policy.cgroup else None,
            policy.pids if policy.cgroup else None,
        )
    except ZygoteError as e:
        raise ReplError(f"cannot start the REPL process: {e}; set RLMX_SANDBOX_ZYGOTE=0 to start it directly") from e
    cg = r.get("cgroup") or {}
    if not policy.cgroup:
        cg = {"active": False, "detail": "disabled by the sandbox policy"}
    return ZygoteProcess(z, int(r["pid"]), {"cgroup": cg})


async def launch_exec(
    policy: SandboxPolicy, argv: list[str], child: socket.socket, log_fd: int, workspace: str
) -> Launched:
    """Start ``argv`` as a new process serving ``child`` (its descriptor is passed on), with
    stdout/stderr on ``log_fd``, in ``workspace`` with :func:`child_env`, in a new session
    and — when the policy and host allow — a new cgroup (memory, pids). Raises ReplError when
    it cannot be started."""
    group, cg = None, {"active": False, "detail": "disabled by the sandbox policy"}
    if policy.cgroup:
        parent, why = cgroup_parent()
        cg = {"active": False, "detail": why}
        if parent is not None:
            try:
                group = parent.group(f"repl-{secrets.token_hex(4)}", policy.cgroup_memory_bytes(), policy.pids)
                cg = {
                    "active": True,
                    "detail": f"{why}: memory {policy.cgroup_memory_bytes() >> 20} MB, {policy.pids} tasks",
                }
            except OSError as e:
                cg = {"active": False, "detail": f"cannot create the REPL's cgroup: {e}"}
    if group is not None:
        procs = " ".join(f'"{d}/cgroup.procs"' for d in sorted(set(group.dirs.values())))
        argv = ["/bin/sh", "-c", f'for f in {procs}; do echo $$ > "$f" || exit 97; done; exec "$@"', "sh", *argv]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            cwd=workspace,
            env=child_env(workspace),
            pass_fds=(child.fileno(),),
            start_new_session=True,
        )
    except OSError as e:
        if group is not None:
            group.remove()
        raise ReplError(f"cannot start the REPL process ({argv[0]}): {e}; check that it is installed") from e
    return ExecProcess(proc, {"cgroup": cg}, group)
