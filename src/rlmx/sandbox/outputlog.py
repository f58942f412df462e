"""The REPL process's stdout/stderr: an unlinked file of the orchestrator (``O_TMPFILE``), so
no path names it and a link planted in the workspace is never opened, truncated or read. The
tail reported when the process dies and the bytes counted in the workspace quota are read
through the orchestrator's own descriptor."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile

__all__ = ["log_blocks", "log_tail", "open_log"]


def open_log() -> int:
    """A new file for the REPL's stdout/stderr that no path names (``O_TMPFILE``, or created
    ``O_EXCL``/``O_NOFOLLOW`` and unlinked at once), opened for appending; returns its
    descriptor (the caller closes it). Raises OSError when no file can be created."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if tmpfile:
        with contextlib.suppress(OSError):
            return os.open(tempfile.gettempdir(), flags | tmpfile, 0o600)
    fd, path = tempfile.mkstemp(prefix="rlmx-repl-log-")
    try:
        os.unlink(path)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
    except OSError:
        os.close(fd)
        raise
    return fd


def log_tail(fd: int | None, chars: int = 2000) -> str:
    """The last ``chars`` characters of the log ``fd`` (stripped; ``"(none)"`` when empty,
    ``""`` when there is no log or it cannot be read), read through the descriptor."""
    if fd is None:
        return ""
    try:
        size = os.fstat(fd).st_size
        n = min(size, 4 * chars)
        text = os.pread(fd, n, size - n).decode("utf-8", "replace")
    except OSError:
        return ""
    return text[-chars:].strip() or "(none)"


def log_blocks(fd: int | None) -> int:
    """Bytes of disk used by the log ``fd`` (allocated blocks; 0 when none or unreadable)."""
    if fd is None:
        return 0
    try:
        return os.fstat(fd).st_blocks * 512
    except OSError:
        return 0
