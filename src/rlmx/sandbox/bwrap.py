"""``BwrapREPL``: the REPL inside bubblewrap (``apt-get install bubblewrap``), for hardened
servers. Chosen with ``RLMX_SANDBOX_RUNNER=bwrap``; same interface and behaviour as
:class:`~rlmx.sandbox.local.LocalREPL` (snapshots, guard, limits), but each REPL process is a
new interpreter started by ``bwrap`` in its own user, pid, network, IPC, UTS and mount
namespaces, seeing only read-only binds of the interpreter and of the context's own files
(each text and offset index, file by file — not the blob folder other corpora share, not the
store's search index), the workspace, a private ``/tmp``, ``/dev`` and ``/proc``, with all
capabilities dropped. Inside, the worker
applies the same in-process layers as the local runner (resource limits, no_new_privs,
Landlock, seccomp); cgroup limits are applied from outside. Starting costs a new interpreter
(~0.1–0.3 s) instead of a fork.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from typing import Any

from rlmx.errors import ReplError

from ._layers import corpus_paths, interpreter_paths
from .local import Launched, LocalREPL

__all__ = ["BwrapREPL", "bwrap_path"]

_SANDBOX_UID = 65534


def bwrap_path(name: str = "bwrap") -> str | None:
    """The bubblewrap executable, or None when it is not installed."""
    return shutil.which(name)


class BwrapREPL(LocalREPL):
    """A REPL process started by bubblewrap (see module doc)."""

    runner = "bwrap"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.uid = None  # bwrap's user namespace provides the unprivileged uid

    def _bwrap_argv(self, fd: int) -> list[str]:
        exe = bwrap_path(self.policy.bwrap_path)
        if exe is None:
            raise ReplError(
                f"the bwrap runner needs bubblewrap ({self.policy.bwrap_path!r} not found): "
                "apt-get install bubblewrap, or set RLMX_SANDBOX_RUNNER=local"
            )
        assert self.workspace is not None
        ro: list[str] = []
        for p in sorted(
            {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, os.path.dirname(sys.executable)}
            | set(interpreter_paths())
            | set(corpus_paths(self.spec.model_dump(mode="json")))  # files, never their folders
        ):
            if os.path.exists(p) and p != "/":
                ro += ["--ro-bind", p, p]
        for p in ("/usr", "/bin", "/lib", "/lib64", "/etc/ld.so.cache", "/etc/localtime"):
            if os.path.exists(p):
                ro += ["--ro-bind", p, p]
        return [
            exe,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--uid",
            str(_SANDBOX_UID),
            "--gid",
            str(_SANDBOX_UID),
            "--hostname",
            "rlmx-sandbox",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            *ro,  # after /tmp's tmpfs: a corpus or the interpreter may live under /tmp
            "--bind",
            self.workspace,
            self.workspace,
            "--chdir",
            self.workspace,
            "--",
            sys.executable,
            "-P",
            "-s",
            "-m",
            "rlmx.sandbox.worker",
            str(fd),
        ]

    async def _launch(self, child: socket.socket, log_fd: int) -> Launched:
        launched = await self._exec(self._bwrap_argv(child.fileno()), child, log_fd)
        outside_uid = os.getuid()
        launched.outside.update(
            {
                "netns": {"active": True, "detail": "bwrap --unshare-net: no interfaces but loopback"},
                "uid": {
                    "active": True,
                    "detail": f"bwrap user namespace: uid {_SANDBOX_UID} inside (uid {outside_uid} outside); "
                    "only read-only binds of the interpreter and the context's files, and the workspace, "
                    "are visible",
                },
            }
        )
        return launched

    def _init_message(self) -> dict[str, Any]:
        msg = super()._init_message()
        msg["sandbox"]["uid"] = None
        msg["sandbox"]["uid_switch"] = False
        msg["env"] = None  # bwrap started it with child_env already
        msg["cwd"] = None
        return msg
