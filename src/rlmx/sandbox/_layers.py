"""The isolation layers, applied by the REPL process to itself before it runs any code.

Runs inside the REPL process, single-threaded, right after it read its ``init`` message
(:mod:`rlmx.sandbox.worker`). :func:`apply` takes the ``sandbox`` part of that message (a
JSON dict built by :class:`rlmx.sandbox.policy.SandboxPolicy`) and applies, in this order,
every layer the host allows:

==============  ==========================================================================
``netns``       a new, empty network namespace (``unshare``; in a user namespace when not
                root): no interface but a downed loopback
``rlimits``     address space (memory + mapped corpus + the interpreter), open files, file
                size, core dumps, tasks (``RLIMIT_NPROC``: see :func:`_nproc`), recursion
                depth; CPU per step (the worker)
``uid``         when root (else reported inactive): a dedicated unprivileged uid/gid, no supplementary groups (the
                workspace is handed to it; folders above the interpreter or the corpus files
                it cannot traverse are covered, the needed paths bound back)
``caps``        no capabilities left (effective, permitted, inheritable, bounding set)
``no_new_privs``  no privilege gain through exec (which seccomp forbids anyway)
``landlock``    file-system allow-list: read the interpreter and the context's own files
                (each text and offset index, file by file: not their folder, which other
                corpora share, nor the store's search index), read-write the workspace,
                nothing else (see :mod:`._landlock`)
``seccomp``     system-call filter (see :mod:`._seccomp`)
==============  ==========================================================================

``cgroup`` (memory and pids limits) is applied from outside, by the zygote or the bwrap
runner; its status arrives in the same message. Each layer reports ``{"active": bool,
"detail": str}``; a layer that cannot be applied is reported with the reason. When the
policy is hardened and a required layer is missing, :func:`apply` raises
:class:`Refused` before the context is opened.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import stat
import sys
import sysconfig
from collections.abc import Iterable
from typing import Any

from . import _landlock, _seccomp
from ._rlimits import rlimits as _rlimits

__all__ = ["LAYERS", "Refused", "apply", "interpreter_paths"]

LAYERS = ("netns", "rlimits", "uid", "caps", "no_new_privs", "landlock", "seccomp", "cgroup")

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38

_libc = ctypes.CDLL(None, use_errno=True)


class Refused(RuntimeError):
    """Hardened mode: a required layer is unavailable."""


def _err() -> str:
    return os.strerror(ctypes.get_errno())


def interpreter_paths() -> list[str]:
    """Folders the interpreter reads at run time (standard library, site-packages, rlmx's
    own folder, shared libraries), for the read-only allow-list."""
    paths: set[str] = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            paths.add(p)
    for p in sys.path:
        if p and os.path.isabs(p) and os.path.isdir(p):
            paths.add(p)
    import rlmx

    paths.add(os.path.dirname(os.path.dirname(os.path.abspath(rlmx.__file__))))
    paths.update(("/usr/lib", "/lib", "/lib64", "/usr/lib64", "/usr/share/zoneinfo", "/sys/devices/system/cpu"))
    return sorted(p for p in paths if os.path.exists(p))


def corpus_files(spec: dict[str, Any]) -> list[str]:
    """The files of the context, and only those: each document's canonical text and its
    offset index (absolute, sorted, existing or not). Never their folders — the blob folder
    is shared by every corpus (and tenant) of the store — and never the store-wide search
    index: ``search`` is answered by the orchestrator (a ``search`` tool request)."""
    files: set[str] = set()
    for d in spec.get("docs") or []:
        for k in ("text_path", "index_path"):
            if d.get(k):
                files.add(os.path.abspath(str(d[k])))
    return sorted(files)


def corpus_paths(spec: dict[str, Any]) -> list[str]:
    """What the sandbox may read of the corpus: the context's files that exist (see
    :func:`corpus_files`), granted file by file."""
    return [f for f in corpus_files(spec) if os.path.exists(f)]


def _unreadable_files(spec: dict[str, Any], uid: int, gid: int) -> list[str]:
    return [f for f in corpus_files(spec) if not _accessible(f, uid, gid, dir_=False)]


def _accessible(path: str, uid: int, gid: int, dir_: bool) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return True
    need = 5 if dir_ else 4  # r-x / r--
    if st.st_uid == uid:
        bits = st.st_mode >> 6
    elif st.st_gid == gid:
        bits = st.st_mode >> 3
    else:
        bits = st.st_mode
    return (bits & need) == need


def _status(active: bool, detail: str) -> dict[str, Any]:
    return {"active": active, "detail": detail}


def _netns() -> dict[str, Any]:
    if os.geteuid() == 0:
        if _libc.unshare(_CLONE_NEWNET) == 0:
            return _status(True, "new network namespace: no interfaces (loopback down)")
        return _status(False, f"unshare(CLONE_NEWNET) failed: {_err()}")
    uid, gid = os.getuid(), os.getgid()
    if _libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        return _status(False, f"unshare(CLONE_NEWUSER|CLONE_NEWNET) failed: {_err()} (user namespaces disabled?)")
    try:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
    except OSError as e:
        return _status(False, f"user namespace map failed: {e}")
    return _status(True, "new user + network namespace: no interfaces (loopback down)")


def _switch_uid(uid: int, gid: int, workspace: str | None) -> dict[str, Any]:
    try:
        if workspace:
            os.chown(workspace, uid, gid)
            os.chmod(workspace, 0o700)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        return _status(False, f"cannot switch to uid {uid}: {e}")
    _libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)  # keeps /proc/self/fd usable by this process
    return _status(True, f"uid {uid}, gid {gid}, no supplementary groups")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_bounding_set() -> None:
    for cap in range(64):
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:  # EINVAL: past the last
            break


def _drop_caps() -> dict[str, Any]:
    hdr = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    if _libc.capset(ctypes.byref(hdr), data) != 0:
        return _status(False, f"capset failed: {_err()}")
    check = (_CapData * 2)()
    _libc.capget(ctypes.byref(hdr), check)
    if any(c.effective or c.permitted or c.inheritable for c in check):
        return _status(False, "capabilities remain after capset")
    return _status(True, "no capabilities (effective, permitted, inheritable, bounding)")


def _traversable(path: str, uid: int, gid: int) -> bool:
    st = os.stat(path)
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _blocked_ancestor(path: str, uid: int, gid: int) -> str | None:
    """The topmost folder above ``path`` that ``uid`` cannot traverse, or None."""
    parts = os.path.abspath(path).split("/")[1:-1]
    cur = ""
    for part in parts:
        cur += "/" + part
        try:
            if not _traversable(cur, uid, gid):
                return cur
        except OSError:
            return None
    return None


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    if _libc.mount(
        src.encode() if src else None,
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    ):
        raise OSError(ctypes.get_errno(), f"mount {src or fstype} on {target}: {_err()}")


def _unblock(paths: Iterable[str], writable: set[str], uid: int, gid: int) -> str:
    """Make ``paths`` reachable by ``uid`` when a folder above them is closed to it (Python
    installed under ``/root``, a corpus under a private folder): in a private mount namespace,
    cover each such folder with an empty tmpfs and bind the needed paths back at the same
    place (read-only unless in ``writable``). The rest of the covered folder (``~/.ssh``...)
    is then invisible. Returns a note ('' when nothing was needed); raises OSError."""
    by_top: dict[str, list[str]] = {}
    for p in paths:
        top = _blocked_ancestor(p, uid, gid)
        if top is not None:
            by_top.setdefault(top, []).append(p)
    if not by_top:
        return ""
    if _libc.unshare(_CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), f"unshare(CLONE_NEWNS): {_err()}")
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    for top, inner in sorted(by_top.items()):
        # One descriptor per covered folder, not per path: after the tmpfs covers ``top``,
        # ``/proc/self/fd/<top>/<rel>`` still resolves beneath the covered folder.
        top_fd = os.open(top, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _mount("tmpfs", top, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=1m")
            made: set[str] = {top}
            for p in sorted(set(inner)):
                src = f"/proc/self/fd/{top_fd}/{os.path.relpath(p, top)}"
                try:
                    is_dir = stat.S_ISDIR(os.stat(src).st_mode)
                except FileNotFoundError:
                    continue
                parent = p if is_dir else os.path.dirname(p)
                if parent not in made:
                    os.makedirs(parent, exist_ok=True)
                    made.add(parent)
                if not is_dir and not os.path.lexists(p):
                    os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
                _mount(src, p, None, _MS_BIND | _MS_REC)
                if p not in writable:
                    _mount(None, p, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
        finally:
            os.close(top_fd)
    return f"; {', '.join(sorted(by_top))} covered (private mount namespace), needed paths bound back"


def apply(cfg: dict[str, Any], spec: dict[str, Any], outside: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply the layers (see module doc); returns ``{layer: {"active", "detail"}}``.
    ``outside``: statuses of layers applied by the launcher (``cgroup``, ``netns``...).
    Raises :class:`Refused` when hardened and a required layer is missing."""
    st: dict[str, Any] = dict(outside or {})
    workspace = cfg.get("workspace")
    off = _status(False, "disabled by the sandbox policy")
    root = os.geteuid() == 0
    uid: int = int(cfg["uid"]) if cfg.get("uid") is not None else -1
    gid: int = int(cfg["gid"]) if cfg.get("gid") is not None else uid
    switch = root and uid >= 0 and bool(cfg.get("uid_switch", True))

    if "netns" not in st:
        st["netns"] = _netns() if cfg.get("netns", True) else off
    want_landlock = cfg.get("landlock", True)
    if cfg.get("seccomp", True):
        with contextlib.suppress(_seccomp.SeccompUnavailable):
            _seccomp.load_library()  # before landlock hides the library folders' listings
    # Everything that opens a path per corpus file runs before the open-files limit: the
    # Landlock ruleset (one rule per file, one descriptor at a time) and the bind mounts of
    # the uid switch. A corpus of any size then gets every layer.
    ruleset: _landlock.Ruleset | None = None
    if want_landlock:
        try:
            read = interpreter_paths() + corpus_paths(spec)
            ruleset = _landlock.build(read, [workspace] if workspace else [], _DEVICES)
        except _landlock.LandlockUnavailable as e:
            st["landlock"] = _status(False, str(e))
    closed = _unreadable_files(spec, uid, gid) if switch else []
    if closed:
        switch = False
        st["uid"] = _status(
            False,
            f"not switched: {len(closed)} corpus file(s) are not readable by other users, e.g. {closed[0]} "
            "(mode 0600: ingest again with this version, or chmod o+r)",
        )
    note = ""
    if switch:
        try:
            needed = interpreter_paths() + corpus_paths(spec) + ([workspace] if workspace else [])
            note = _unblock(needed, {workspace} if workspace else set(), uid, gid)
        except OSError as e:
            switch = False
            st["uid"] = _status(False, f"not switched: paths the REPL needs are closed to uid {uid} ({e})")
    launcher_root = bool(cfg.get("launcher_root", root))
    st["rlimits"] = _rlimits(cfg.get("limits") or {}, spec, bool(switch), launcher_root)
    if switch:
        _drop_bounding_set()
        st["uid"] = _switch_uid(uid, gid, workspace)
        st["uid"]["detail"] += note
    elif "uid" in st:
        pass
    else:
        st["uid"] = (
            _status(
                False,
                f"not root: the REPL keeps the orchestrator's uid {os.getuid()} (a dedicated uid per REPL "
                "needs root); Landlock and seccomp keep it from the orchestrator's files and processes",
            )
            if not root
            else (off if not cfg.get("uid_switch", True) else _status(False, "no sandbox uid configured"))
        )
    if root and not switch:
        _drop_bounding_set()
    st["caps"] = _drop_caps()
    pdeath = _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if pdeath and cfg.get("parent_pid") and os.getppid() != int(cfg["parent_pid"]):
        os._exit(3)  # the launcher is already gone
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        st["no_new_privs"] = _status(True, "set")
    else:
        st["no_new_privs"] = _status(False, f"prctl failed: {_err()}")
    if ruleset is not None:
        try:
            st["landlock"] = _status(True, _landlock.enforce(ruleset))
        except _landlock.LandlockUnavailable as e:
            st["landlock"] = _status(False, str(e))
    elif not want_landlock:
        st["landlock"] = off
    if cfg.get("seccomp", True):
        try:
            st["seccomp"] = _status(True, _seccomp.install(os.getpid()))
        except _seccomp.SeccompUnavailable as e:
            st["seccomp"] = _status(False, str(e))
    else:
        st["seccomp"] = off
    st.setdefault("cgroup", _status(False, "not applied by this launcher"))
    if cfg.get("hardened"):
        missing = [f"{k}: {st[k]['detail']}" for k in cfg.get("required") or () if not st.get(k, {}).get("active")]
        if missing:
            raise Refused("hardened sandbox: required layers are unavailable: " + "; ".join(missing))
    return st


_DEVICES = [("/dev/null", True), ("/dev/zero", False), ("/dev/urandom", False), ("/dev/random", False)]
