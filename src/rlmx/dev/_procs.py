"""Process plumbing of the dev cluster (private): detached children, liveness by pid *and*
start time (so a recycled pid is never mistaken for ours), polite-then-forced stops, ports
and HTTP probes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

__all__ = ["Proc", "alive", "free_port", "http_status", "port_is_free", "spawn", "start_time", "stop_all", "wait_until"]

HOST = "127.0.0.1"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
T = TypeVar("T")

Proc = tuple[int, int]
"""``(pid, start time in clock ticks since boot)`` — a process's identity."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether ``127.0.0.1:port`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def _stat(pid: int) -> tuple[str, int] | None:
    """``(state letter, start time)`` of ``pid`` from ``/proc``, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return fields[0], int(fields[19])


def start_time(pid: int) -> int:
    """The start time of a running ``pid`` (0 when unknown)."""
    st = _stat(pid)
    return st[1] if st else 0


def alive(proc: Proc) -> bool:
    """Whether the process ``(pid, start_time)`` still runs (a zombie counts as ended)."""
    pid, started = proc
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X") and (started == 0 or st[1] == started)


def spawn(argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path) -> Proc:
    """Start ``argv`` detached (its own session, stdin from /dev/null, stdout and stderr
    appended to ``log``) and return its identity."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:  # the child keeps its own descriptor
        p = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return p.pid, start_time(p.pid)


def wait_until(fn: Callable[[], T | None], deadline_s: float, every_s: float = 0.1) -> T | None:
    """Poll ``fn`` until it returns something truthy or ``deadline_s`` seconds pass (then the
    last value, falsy)."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every_s)


def stop_all(procs: Sequence[Proc], grace_s: float = 15.0) -> list[Proc]:
    """SIGTERM each live process, wait up to ``grace_s`` seconds for all of them to end, then
    SIGKILL the rest; returns the processes that had to be killed."""
    live = [p for p in procs if alive(p)]
    for pid, _ in live:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    wait_until(lambda: not any(alive(p) for p in live), grace_s)
    killed = [p for p in live if alive(p)]
    for pid, _ in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: not any(alive(p) for p in killed), 5.0)
    return killed


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status ``GET url`` answers, or None when nothing answers."""
    try:
        with _OPENER.open(url, timeout=timeout) as r:
            r.read()
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (urllib.error.URLError, OSError):
        return None
