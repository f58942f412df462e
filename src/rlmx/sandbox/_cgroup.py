"""Per-REPL cgroups (memory and pids limits) under this process's own cgroup, v1 or v2.

:func:`parent` finds where groups can be made (a ``rlmx-<pid>`` folder beneath this process's
cgroup, in each controller's hierarchy) or says why not; :class:`Group` is one
REPL's group. Used by the zygote and the bwrap runner (which run as the orchestrator's user);
never inside the REPL process.
"""

from __future__ import annotations

import contextlib
import os
import time

__all__ = ["CgroupParent", "Group", "parent"]


def _mounts() -> dict[str, str]:
    """Controller (``memory``, ``pids``, or ``""`` for v2) → mount point."""
    out: dict[str, str] = {}
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fstype, _, opts = right.split()[:3]
                mnt = left.split()[4]
                if fstype == "cgroup2":
                    out.setdefault("", mnt)
                elif fstype == "cgroup":
                    for c in opts.split(","):
                        if c in ("memory", "pids"):
                            out[c] = mnt
    except OSError:
        pass
    return out


def _own_paths() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                for c in ctrls.split(",") if ctrls else [""]:
                    out[c] = path
    except OSError:
        pass
    return out


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


class CgroupParent:
    """Where this process makes REPL groups: ``dirs`` maps ``memory``/``pids`` to a folder
    (both the same folder with cgroup v2); ``version`` is 1 or 2."""

    def __init__(self, version: int, dirs: dict[str, str]) -> None:
        self.version = version
        self.dirs = dirs

    def describe(self) -> str:
        where = sorted(set(self.dirs.values()))
        return f"cgroup v{self.version} memory+pids under {', '.join(where)}"

    def group(self, name: str, memory_bytes: int | None, pids: int | None) -> Group:
        """Create the group ``name`` with its limits. Raises OSError."""
        g = Group(self, {c: os.path.join(d, name) for c, d in self.dirs.items()})
        try:
            for d in set(g.dirs.values()):
                os.mkdir(d, 0o755)
            mem, pid = g.dirs["memory"], g.dirs["pids"]
            if memory_bytes is not None:
                if self.version == 1:
                    _write(os.path.join(mem, "memory.limit_in_bytes"), str(memory_bytes))
                    with contextlib.suppress(OSError):  # no swap beyond the limit
                        _write(os.path.join(mem, "memory.memsw.limit_in_bytes"), str(memory_bytes))
                else:
                    _write(os.path.join(mem, "memory.max"), str(memory_bytes))
                    with contextlib.suppress(OSError):
                        _write(os.path.join(mem, "memory.swap.max"), "0")
            if pids is not None:
                _write(os.path.join(pid, "pids.max"), str(pids))
        except OSError:
            g.remove()
            raise
        return g

    def remove(self) -> None:
        for d in set(self.dirs.values()):
            with contextlib.suppress(OSError):
                os.rmdir(d)


class Group:
    """One REPL's cgroup: :meth:`add` a process, :meth:`oom_killed`, :meth:`remove`."""

    def __init__(self, parent: CgroupParent, dirs: dict[str, str]) -> None:
        self.parent = parent
        self.dirs = dirs

    def add(self, pid: int) -> None:
        for d in set(self.dirs.values()):
            _write(os.path.join(d, "cgroup.procs"), str(pid))

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this group for memory."""
        name = "memory.oom_control" if self.parent.version == 1 else "memory.events"
        try:
            with open(os.path.join(self.dirs["memory"], name), encoding="utf-8") as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == "oom_kill" and int(v) > 0:
                        return True
        except (OSError, ValueError):
            pass
        return False

    def remove(self, wait_s: float = 1.0) -> None:
        """Remove the group (its processes must be gone; retried briefly while they exit)."""
        end = time.monotonic() + wait_s
        for d in set(self.dirs.values()):
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > end:
                        break
                    time.sleep(0.005)


def parent(name: str | None = None) -> tuple[CgroupParent | None, str]:
    """Make the folder for this process's REPL groups. Returns ``(parent, description)`` or
    ``(None, why not)``."""
    name = name or f"rlmx-{os.getpid()}"
    mounts, own = _mounts(), _own_paths()
    if "memory" in mounts and "pids" in mounts:
        dirs = {c: os.path.join(mounts[c], own.get(c, "/").lstrip("/"), name) for c in ("memory", "pids")}
        version = 1
    elif "" in mounts:
        base = os.path.join(mounts[""], own.get("", "/").lstrip("/"))
        try:
            with open(os.path.join(base, "cgroup.subtree_control"), encoding="utf-8") as f:
                enabled = f.read().split()
        except OSError as e:
            return None, f"cgroup v2 at {base} is not readable ({e.strerror})"
        if not {"memory", "pids"} <= set(enabled):
            return None, (
                f"cgroup v2: the memory and pids controllers are not delegated to {base} "
                "(run under a systemd scope with Delegate=yes)"
            )
        dirs = {"memory": os.path.join(base, name), "pids": os.path.join(base, name)}
        version = 2
    else:
        return None, "no cgroup memory/pids hierarchy is mounted"
    made: list[str] = []
    try:
        for d in set(dirs.values()):
            os.mkdir(d, 0o755)
            made.append(d)
    except OSError as e:
        for d in made:
            with contextlib.suppress(OSError):
                os.rmdir(d)
        return None, f"cgroup v{version} is not writable here ({e.strerror}: {e.filename})"
    p = CgroupParent(version, dirs)
    return p, p.describe()
