"""The ``rlimits`` layer: resource limits the REPL process sets on itself (address space,
open files, file size, core dumps, tasks, recursion depth; CPU per step is the worker's).
Applied by :func:`rlmx.sandbox._layers.apply`, in the REPL process, before any model code."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sys
from typing import Any

__all__ = ["rlimits"]


def _status(active: bool, detail: str) -> dict[str, Any]:
    return {"active": active, "detail": detail}


def rlimits(cfg: dict[str, Any], spec: dict[str, Any], dedicated_uid: bool, launcher_root: bool) -> dict[str, Any]:
    """Apply the policy's resource limits to this process (``cfg``: the ``sandbox`` part of
    the REPL's init message; ``spec``: its context, whose mapped files the address-space
    limit allows for); returns the layer's status ``{"active", "detail"}``."""
    done: list[str] = []

    def lim(which: int, value: int, name: str) -> None:
        _soft, hard = resource.getrlimit(which)
        v = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (v, v))
        done.append(name)

    try:
        mem = cfg.get("memory_bytes")
        if mem:
            mapped = 0
            for d in spec.get("docs") or []:
                for k in ("text_path", "index_path"):
                    with contextlib.suppress(OSError, TypeError):
                        mapped += os.stat(str(d[k])).st_size if d.get(k) else 0
            with open("/proc/self/statm") as f:
                vm_now = int(f.read().split()[0]) * resource.getpagesize()
            slack = int(cfg.get("address_slack_bytes") or 512 << 20)
            lim(resource.RLIMIT_AS, vm_now + int(mem) + mapped + slack, f"address space {int(mem) >> 20} MB + corpus")
        if cfg.get("open_files"):
            lim(resource.RLIMIT_NOFILE, int(cfg["open_files"]), f"{cfg['open_files']} open files")
        if cfg.get("file_size_bytes"):
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead
            lim(resource.RLIMIT_FSIZE, int(cfg["file_size_bytes"]), f"file size {int(cfg['file_size_bytes']) >> 20} MB")
        lim(resource.RLIMIT_CORE, 0, "no core dumps")
        if cfg.get("threads"):
            _nproc(int(cfg["threads"]), dedicated_uid, launcher_root, lim)
    except (OSError, ValueError) as e:
        return _status(False, f"setrlimit failed after {', '.join(done) or 'none'}: {e}")
    if mem:
        done.append(f"recursion depth {_clamp_recursion(int(mem))}")
    cpu = cfg.get("cpu_s")
    if cpu:
        done.append(f"CPU {cpu:g} s per step")
    return _status(True, ", ".join(done))


def _outside_uid() -> int | None:
    """The uid this process has in the user namespace above its own (None: it is in the
    initial user namespace, or the map cannot be read)."""
    try:
        with open("/proc/self/uid_map") as f:
            rows = [line.split() for line in f if line.strip()]
    except OSError:
        return None
    if rows == [["0", "0", "4294967295"]]:
        return None  # the initial user namespace
    me = os.getuid()
    for row in rows:
        inside, outside, count = (int(x) for x in row)
        if inside <= me < inside + count:
            return outside + me - inside
    return None


def _tasks_of(uid: int) -> int:
    """How many tasks (threads included) ``uid`` runs now, as far as /proc shows."""
    n = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{name}").st_uid == uid:
                    n += len(os.listdir(f"/proc/{name}/task"))
    return n


def _nproc(threads: int, dedicated_uid: bool, launcher_root: bool, lim: Any) -> None:
    """``RLIMIT_NPROC``: the kernel counts the tasks of the real uid in the current user
    namespace, so the limit bounds this REPL alone with a dedicated uid or in a user
    namespace of its own (the non-root ``netns`` layer, bwrap). Otherwise (not root, no user
    namespace) it counts every task of the orchestrator's uid: the limit is what that uid
    runs now plus ``threads``. A process that is root on the host (bwrap started by root: uid
    65534 inside is uid 0 outside) ignores it: the cgroup's pids limit bounds it instead, and
    nothing is claimed."""
    if dedicated_uid:
        lim(resource.RLIMIT_NPROC, threads, f"{threads} threads")
    elif _outside_uid() is not None:
        if not launcher_root:
            lim(resource.RLIMIT_NPROC, threads, f"{threads} tasks (own user namespace)")
    elif os.geteuid() != 0:
        now = _tasks_of(os.getuid())
        lim(resource.RLIMIT_NPROC, now + threads, f"{threads} tasks beyond the {now} of uid {os.getuid()}")


def _clamp_recursion(memory_bytes: int) -> int:
    """Cap what ``sys.setrecursionlimit`` accepts at about one Python frame per KB of the
    memory budget (10,000 to 1,000,000): deep recursion then ends with ``RecursionError``
    before the address-space limit. Without it, a recursion past the memory budget (no
    cgroup to kill the process: not root) spends tens of seconds unwinding millions of
    frames whose traceback entries cannot be allocated. Returns the cap."""
    cap = max(10_000, min(1_000_000, memory_bytes >> 10))
    original = sys.setrecursionlimit

    def setrecursionlimit(limit: int, /) -> None:
        original(min(int(limit), cap) if isinstance(limit, int) and limit > 0 else limit)

    setrecursionlimit.__doc__ = original.__doc__
    sys.setrecursionlimit = setrecursionlimit
    if sys.getrecursionlimit() > cap:
        original(cap)
    return cap
