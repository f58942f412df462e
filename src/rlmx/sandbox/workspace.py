"""The REPL's workspace: created per execution, kept across restarts, removed on close, and
held to a quota. The REPL process owns what is in it, so it is walked and cleaned through
directory descriptors only, never following a symbolic link, and an entry is removed only
when it is still the file that was measured."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator

from .outputlog import log_blocks

__all__ = ["enforce_quota", "make_workspace", "remove_file", "remove_workspace", "walk", "workspace_usage"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def make_workspace() -> str:
    """A new private folder (0700) for one execution's REPL; returns its path. Raises OSError."""
    return tempfile.mkdtemp(prefix="rlmx-repl-")


def remove_workspace(path: str) -> None:
    """Remove the workspace ``path`` and everything in it (errors ignored)."""
    shutil.rmtree(path, ignore_errors=True)


def walk(root: str) -> Iterator[tuple[int, str, str, os.stat_result]]:
    """``(dir_fd, name, relative path, lstat)`` of every entry under ``root``, directories
    included, never following a symbolic link: each directory is opened relative to its
    parent's descriptor with ``O_NOFOLLOW``, one descriptor at a time (any depth), and the
    walk climbs back through ``..`` only when that is still the parent it came from — it
    stops early when the tree is moved under it. ``dir_fd`` is valid during the yield."""
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError:
        return
    frames: list[tuple[int, int, list[str], str]] = []  # (st_dev, st_ino, subdirectories left, prefix)
    prefix = ""
    try:
        while True:
            subdirs: list[str] = []
            try:
                with os.scandir(fd) as it:
                    entries = list(it)
            except OSError:
                entries = []
            for e in entries:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    subdirs.append(e.name)
                yield fd, e.name, prefix + e.name, st
            here = os.fstat(fd)
            frames.append((here.st_dev, here.st_ino, subdirs, prefix))
            while True:  # the next directory: a subdirectory left here, or climb
                _dev, _ino, left, pre = frames[-1]
                if left:
                    name = left.pop()
                    try:
                        child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    except OSError:
                        continue
                    os.close(fd)
                    fd, prefix = child, pre + name + "/"
                    break
                frames.pop()
                if not frames:
                    return
                parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = parent
                up = os.fstat(fd)
                if (up.st_dev, up.st_ino) != frames[-1][:2]:
                    return  # moved while being walked: stop rather than leave the tree
    except OSError:
        return
    finally:
        os.close(fd)


def workspace_usage(root: str) -> int:
    """Bytes of disk used under ``root`` (allocated blocks of every entry; symlinks not followed)."""
    return sum(st.st_blocks * 512 for _fd, _name, _rel, st in walk(root))


def remove_file(dir_fd: int, name: str, st: os.stat_result) -> bool:
    """Remove the regular file ``name`` of ``dir_fd`` that ``st`` describes, without following
    a link: opened with ``O_NOFOLLOW`` and checked to be that file, then unlinked, and emptied
    through the descriptor only when no other name links to it (so that a process holding it
    open does not keep the space). False when it is gone or no longer that file."""
    try:
        fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        fd = -1  # not writable by the orchestrator (not root): unlink only
    try:
        if fd >= 0:
            now = os.fstat(fd)
            if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                return False
        os.unlink(name, dir_fd=dir_fd)  # removes the name, never what a link points to
        if fd >= 0 and os.fstat(fd).st_nlink == 0:
            os.ftruncate(fd, 0)
        return True
    except OSError:
        return False
    finally:
        if fd >= 0:
            os.close(fd)


def enforce_quota(ws: str | None, quota_mb: int, log_fd: int | None, *, force: bool = False) -> str:
    """Over the workspace quota (its files and the output log): remove regular files of
    the workspace, largest first, until under it — through directory descriptors, never
    following a link, whatever their times say (the code can set them); an oversized log
    is emptied. ``ws``: the workspace folder (None: nothing to do); ``quota_mb``: the quota in
    MB; ``log_fd``: the output log (:mod:`rlmx.sandbox.outputlog`). ``force``: remove down to
    the quota even when within it (after the step was stopped for it). Returns a note for the
    model, starting with ``"; "`` ('' when within the quota and nothing was removed)."""
    quota = quota_mb << 20
    if ws is None:
        return ""
    sizes: dict[str, tuple[int, int, int]] = {}  # relative path -> (bytes, st_dev, st_ino)
    used = log_blocks(log_fd)
    for _fd, _name, rel, st in walk(ws):
        used += st.st_blocks * 512
        if stat.S_ISREG(st.st_mode):
            sizes[rel] = (st.st_blocks * 512, st.st_dev, st.st_ino)
    if used <= quota and not force:
        return ""
    # largest first; "" stands for the output log (emptied through its descriptor)
    order = sorted([(b, rel) for rel, (b, _d, _i) in sizes.items()] + [(log_blocks(log_fd), "")], reverse=True)
    chosen: set[str] = set()
    removed = []
    for size, rel in order:
        if used <= quota:
            break
        used -= size
        if rel:
            chosen.add(rel)
        elif size and log_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(log_fd, 0)
                removed.append(f"the REPL's output log ({size:,} bytes)")
    if chosen:
        for fd, name, rel, st in walk(ws):
            same = rel in chosen and stat.S_ISREG(st.st_mode) and sizes[rel][1:] == (st.st_dev, st.st_ino)
            if same and remove_file(fd, name, st):
                removed.append(f"{rel} ({sizes[rel][0]:,} bytes)")
    more = f" and {len(removed) - 20:,} more" if len(removed) > 20 else ""
    gone = f"; removed from the workspace, largest first: {', '.join(removed[:20])}{more}" if removed else ""
    if force:
        return gone
    return f"; WorkspaceQuotaExceeded: the workspace used more than its quota of {quota_mb} MB{gone}"
