"""Stopping and probing a :class:`~rlmx.dev.postgres.LocalPostgres` server from another
process than the one that started it (the dev cluster's ``status`` and ``down``): the
server is known by its folder only (``FOLDER/data/postmaster.pid``)."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from pathlib import Path
from typing import Any

from rlmx.dev import _procs
from rlmx.errors import RlmxError

__all__ = ["pg_running", "pg_stop", "postmaster_pid"]


def postmaster_pid(folder: Path) -> int | None:
    """The pid of the PostgreSQL server running on ``folder/data``, or None when none runs
    (no ``postmaster.pid``, or its process is gone or is not a postgres)."""
    try:
        pid = int((Path(folder) / "data" / "postmaster.pid").read_text().split("\n", 1)[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"postgres" in cmdline and _procs.alive((pid, 0)) else None


def pg_running(folder: Path) -> bool:
    """Whether a PostgreSQL server runs on ``folder/data``."""
    return postmaster_pid(folder) is not None


def pg_stop(folder: Path, timeout_s: float = 30.0) -> None:
    """Stop the server on ``folder/data``: ``pg_ctl stop -m fast`` (as the ``postgres`` user
    when we are root), else SIGINT (fast shutdown), then SIGQUIT (immediate) to the
    postmaster. Does nothing when no server runs there."""
    pid = postmaster_pid(folder)
    if pid is None:
        return
    try:
        from rlmx.dev.postgres import find_pg_bin

        pg_ctl = str(find_pg_bin() / "pg_ctl")
        extra: dict[str, Any] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            extra = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            env["HOME"] = user.pw_dir
        subprocess.run(
            [pg_ctl, "-D", str(Path(folder) / "data"), "-m", "fast", "-w", "-t", str(int(timeout_s)), "stop"],
            cwd=str(folder), env=env, capture_output=True, timeout=timeout_s + 10, check=False, **extra,
        )  # fmt: skip
    except (OSError, KeyError, subprocess.SubprocessError, RlmxError):  # no binaries or user: signal instead
        pass

    def gone() -> bool:
        return postmaster_pid(folder) is None

    for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGQUIT, 10.0)):
        if gone():
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        _procs.wait_until(gone, wait_s)
