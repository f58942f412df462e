"""Landlock (Linux ≥ 5.13) through raw syscalls: a file-system allow-list for this process.

Runs inside the REPL process. :func:`build` creates a ruleset that handles every access
right the kernel's ABI knows, then allows reading (files and directories, not executing)
beneath the ``read`` paths, reading and writing beneath the ``write`` paths, and the listed
device files — one path descriptor open at a time, before the open-files limit is applied,
so a corpus of any size fits — and :func:`enforce` restricts the process to it.
Anything else — ``/etc``, ``/home``, ``/proc`` of other processes, another execution's
workspace — is denied with ``EACCES``. From ABI 4 TCP ``bind``/``connect`` are denied too;
from ABI 6 signals to processes outside the sandbox and abstract Unix sockets are scoped.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
from collections.abc import Iterable

__all__ = ["LandlockUnavailable", "Ruleset", "abi_version", "build", "enforce"]

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # same number on every arch
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

_EXECUTE = 1 << 0
_WRITE_FILE = 1 << 1
_READ_FILE = 1 << 2
_READ_DIR = 1 << 3
_REMOVE_DIR = 1 << 4
_REMOVE_FILE = 1 << 5
_MAKE_CHAR = 1 << 6
_MAKE_DIR = 1 << 7
_MAKE_REG = 1 << 8
_MAKE_SOCK = 1 << 9
_MAKE_FIFO = 1 << 10
_MAKE_BLOCK = 1 << 11
_MAKE_SYM = 1 << 12
_REFER = 1 << 13  # ABI 2
_TRUNCATE = 1 << 14  # ABI 3
_IOCTL_DEV = 1 << 15  # ABI 5

_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_FILE_ONLY = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE | _IOCTL_DEV

_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

READ = _READ_FILE | _READ_DIR
WRITE = READ | _WRITE_FILE | _REMOVE_DIR | _REMOVE_FILE | _MAKE_DIR | _MAKE_REG | _MAKE_SYM | _REFER | _TRUNCATE


class LandlockUnavailable(RuntimeError):
    """The kernel has no Landlock (or it is disabled), or a rule could not be added."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 when unavailable."""
    r = _libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(0, int(r))


def _fs_mask(abi: int) -> int:
    return _FS_BY_ABI[max(k for k in _FS_BY_ABI if k <= abi)]


class Ruleset:
    """A Landlock ruleset built but not yet enforced (see :func:`build`): its fd, the number
    of rules, the ABI. Holds one descriptor, whatever the number of paths."""

    def __init__(self, fd: int, rules: int, abi: int):
        self.fd, self.rules, self.abi = fd, rules, abi

    def close(self) -> None:
        """Close the ruleset's descriptor (idempotent)."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def build(read: Iterable[str], write: Iterable[str], devices: Iterable[tuple[str, bool]] = ()) -> Ruleset:
    """Create a ruleset and add one rule per path, opening each path (``O_PATH``) only while
    its rule is added: at most two descriptors are open at any time, so a corpus of any size
    fits under the open-files limit, and paths resolve with the caller's privileges (call it
    before dropping them). ``read``/``write``: paths granted read / read+write beneath them;
    ``devices``: ``(path, writable)``. Missing paths are skipped. Enforce it with
    :func:`enforce`. Raises :class:`LandlockUnavailable` (no descriptor left open)."""
    abi = abi_version()
    if abi < 1:
        raise LandlockUnavailable("the kernel has no Landlock (Linux >= 5.13 with lsm=...,landlock)")
    fs = _fs_mask(abi)
    attr = _RulesetAttr(fs, (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0, 0)
    size = 8
    if abi >= 4:
        size = 16
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL
        size = 24
    fd = _libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        raise LandlockUnavailable(f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    ruleset = Ruleset(int(fd), 0, abi)
    wanted = [(p, READ) for p in read] + [(p, WRITE) for p in write]
    wanted += [(p, (_READ_FILE | _WRITE_FILE) if w else _READ_FILE) for p, w in devices]
    seen: set[str] = set()
    try:
        for path, access in wanted:
            key = f"{path}\0{access}"
            if key in seen:
                continue
            seen.add(key)
            try:
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            except OSError as e:
                raise LandlockUnavailable(f"cannot open {path} for its rule: {e}") from None
            try:
                is_dir = stat.S_ISDIR(os.fstat(pfd).st_mode)
                allowed = access & fs if is_dir else access & fs & _FILE_ONLY
                rule = _PathBeneath(allowed, pfd)
                rc = _libc.syscall(
                    _ADD_RULE, ctypes.c_int(ruleset.fd), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule), 0
                )
                if rc:
                    raise LandlockUnavailable(f"landlock_add_rule ({path}): {os.strerror(ctypes.get_errno())}")
            finally:
                os.close(pfd)
            ruleset.rules += 1
    except BaseException:
        ruleset.close()
        raise
    return ruleset


def enforce(ruleset: Ruleset) -> str:
    """Restrict this process to ``ruleset`` (see :func:`build`) and close it. Call with
    ``no_new_privs`` set and before starting threads. Returns a one-line description; raises
    :class:`LandlockUnavailable`."""
    try:
        if ruleset.fd < 0:
            raise LandlockUnavailable("the ruleset was already closed")
        if _libc.syscall(_RESTRICT_SELF, ctypes.c_int(ruleset.fd), ctypes.c_uint32(0)):
            raise LandlockUnavailable(f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    finally:
        ruleset.close()
    abi = ruleset.abi
    extra = ", TCP bind/connect denied" if abi >= 4 else ""
    extra += ", signals and abstract sockets scoped" if abi >= 6 else ""
    return f"ABI {abi}, {ruleset.rules} rules: read-only interpreter and corpus, read-write workspace{extra}"
