"""A seccomp filter for the REPL process, built with libseccomp through ctypes.

Runs inside the REPL process (no pydantic, no asyncio). The filter allows everything but:

* new programs and processes: ``execve``, ``execveat``, ``fork``, ``vfork``, ``clone``
  without ``CLONE_THREAD`` (threads stay allowed), ``clone3`` (``ENOSYS``, so that the C
  library falls back to ``clone``, whose flags the filter can inspect);
* sockets: ``socket``, ``socketpair``, ``connect``, ``bind``, ``listen``, ``accept(4)`` —
  the process keeps only the socket it inherited, its channel to the orchestrator;
* other processes: ``ptrace``, ``process_vm_readv/writev``, ``kcmp``, ``pidfd_*``; ``kill``
  and ``tgkill`` to any process but itself; ``tkill``, ``rt_(tg)sigqueueinfo``;
* the kernel's administrative surface: ``mount`` and friends, ``unshare``, ``setns``,
  ``chroot``, ``pivot_root``, ``bpf``, ``perf_event_open``, modules, ``kexec``, keyrings,
  ``io_uring`` (its operations would bypass this filter), ``userfaultfd``, handles,
  ``ioctl(TIOCSTI)``, clocks, swap, reboot.

A denied call fails with ``EPERM`` (the code sees ``PermissionError``); the process lives on.
A call through another ABI than the process's own — i386 (``int 0x80``) or x32 (numbers
with bit ``0x40000000``) on x86_64 — fails with ``ENOSYS``, whatever the call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

__all__ = ["DENIED", "SeccompUnavailable", "install"]

DENIED = [
    "execve",
    "execveat",
    "fork",
    "vfork",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "socket",
    "socketpair",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "bpf",
    "perf_event_open",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "userfaultfd",
    "open_by_handle_at",
    "name_to_handle_at",
    "pidfd_open",
    "pidfd_getfd",
    "pidfd_send_signal",
    "tkill",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "swapon",
    "swapoff",
    "reboot",
    "syslog",
    "acct",
    "quotactl",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "iopl",
    "ioperm",
    "fanotify_init",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "open_tree",
    "move_mount",
    "mount_setattr",
    "lookup_dcookie",
    "process_madvise",
]

_ALLOW = 0x7FFF0000
_CLONE_THREAD = 0x00010000
_TIOCSTI = 0x5412
_TIOCLINUX = 0x541C
_CMP_NE, _CMP_EQ, _CMP_MASKED_EQ = 1, 4, 7
_ATTR_BADARCH, _ATTR_NNP = 2, 3


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class SeccompUnavailable(RuntimeError):
    """libseccomp is missing or the kernel refused the filter."""


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _lib() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        name = ctypes.util.find_library("seccomp")
        try:
            lib = ctypes.CDLL(name or "libseccomp.so", use_errno=True)
        except OSError as e:
            raise SeccompUnavailable(f"libseccomp not found ({e}); install libseccomp2") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    return lib


_LIB: ctypes.CDLL | None = None


def load_library() -> ctypes.CDLL:
    """Load libseccomp once (the zygote does it before forking). Raises SeccompUnavailable."""
    global _LIB
    if _LIB is None:
        _LIB = _lib()
    return _LIB


def install(pid: int | None = None) -> str:
    """Load the filter into this process (all threads). Returns a one-line description.

    Sets ``no_new_privs`` (required for an unprivileged filter). ``pid``: this process's id,
    the only target ``kill``/``tgkill`` may signal. Raises :class:`SeccompUnavailable`."""
    lib = load_library()
    pid = os.getpid() if pid is None else pid
    ctx = lib.seccomp_init(_ALLOW)
    if not ctx:
        raise SeccompUnavailable("seccomp_init failed")
    eperm = _errno_action(errno.EPERM)
    rules = 0
    try:
        lib.seccomp_attr_set(ctx, _ATTR_NNP, 1)
        # A call through a foreign ABI (i386 ``int 0x80``, x32 numbers ``0x40000000 | nr``) does
        # not match this architecture's rules: libseccomp's default for it kills the calling
        # thread only, and the step hangs until its wall limit. ENOSYS, as on a kernel built
        # without those ABIs, makes the call fail at once and the process go on.
        rc = lib.seccomp_attr_set(ctx, _ATTR_BADARCH, _errno_action(errno.ENOSYS))
        if rc < 0:
            raise SeccompUnavailable(f"seccomp_attr_set(ACT_BADARCH) failed: {os.strerror(-rc)}")

        def add(name: str, action: int, *cmps: tuple[int, int, int, int]) -> None:
            nonlocal rules
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                return  # not a syscall on this architecture
            arr = (_ArgCmp * max(1, len(cmps)))(*[_ArgCmp(*c) for c in cmps])
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr)
            if rc < 0:
                raise SeccompUnavailable(f"seccomp rule for {name} failed: {os.strerror(-rc)}")
            rules += 1

        for name in DENIED:
            add(name, eperm)
        add("clone", eperm, (0, _CMP_MASKED_EQ, _CLONE_THREAD, 0))
        add("clone3", _errno_action(errno.ENOSYS))
        add("kill", eperm, (0, _CMP_NE, pid, 0))
        add("tgkill", eperm, (0, _CMP_NE, pid, 0))
        add("ioctl", eperm, (1, _CMP_EQ, _TIOCSTI, 0))
        add("ioctl", eperm, (1, _CMP_EQ, _TIOCLINUX, 0))
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            raise SeccompUnavailable(f"seccomp_load failed: {os.strerror(-rc)}")
    finally:
        lib.seccomp_release(ctx)
    return f"{rules} rules: no exec, no new processes, no sockets, no ptrace/mount/bpf/io_uring; i386/x32 ABI: ENOSYS"
