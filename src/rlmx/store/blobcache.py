"""A bounded local cache of remote blobs, for the sandboxed REPL to memory-map.

:class:`BlobCache` keeps read-only copies of blobs of a remote store
(:class:`~rlmx.store.objects.ObjectBlobStore`) under one folder, one file per key at the
key's own relative path (``text/<sha>.txt``). Several worker processes on one host may share
the folder:

* a copy is written to a temporary file beside its final name (``.tmp-*``) and renamed into
  place, so readers never see a partial file; two processes materialising one key at once
  both end with a complete, correct file (the last rename wins; the content is the same);
* files are mode ``0644`` and folders ``0755`` (less the umask, as for
  :class:`~rlmx.store.blobs.LocalBlobStore`): the REPL runs under its own uid and must read
  them; the cache normally lies inside the ``0700`` rlmx home, which keeps other users out;
* eviction runs under an exclusive ``fcntl.flock`` on ``<folder>/.lock``.

**Only immutable keys may be cached.** Content-addressed keys (``text/...``, ``index/...``)
never change, so a cached copy is always valid. Mutable blobs (snapshots, secrets) must be
read with :meth:`BlobStore.get <rlmx.store.base.BlobStore.get>`, never through
``local_path``: a cached copy of them would go stale.

**Bounded.** After a file is added, when the total size exceeds ``max_bytes`` the least
recently used files (by modification time, touched on each use) are deleted until the total
fits — but never a file used in the last ``min_age_s`` seconds (default 600: an execution
using it may still open it), so the bound is exceeded while that many bytes are in use.
Deleting a file that a REPL has memory-mapped is safe on Linux: the name goes, existing
mappings and open descriptors keep the inode until they close. Each process counts the
bytes it adds and rescans the folder when its count passes ``max_bytes`` or at least every
``rescan_s`` seconds, so other processes' additions are noticed too.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from rlmx.errors import StoreError
from rlmx.store.blobs import validate_key

__all__ = ["BlobCache"]

_TMP = ".tmp-"
_LOCK = ".lock"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


class BlobCache:
    """Local read-only copies of remote blobs under ``folder`` (created, mode 0755).

    ``max_bytes``: the size the cache is trimmed to after each addition (bytes).
    ``min_age_s``: a file used (added or returned by :meth:`get`) less than this many seconds
    ago is never evicted. ``rescan_s``: how stale this process's view of the total may get.
    Raises :class:`~rlmx.errors.StoreError` when the folder cannot be created or written,
    ``ValueError`` for an invalid key.
    """

    def __init__(
        self,
        folder: str | Path,
        max_bytes: int,
        *,
        min_age_s: float = 600.0,
        rescan_s: float = 30.0,
    ):
        if max_bytes < 0:
            raise ValueError(f"BlobCache max_bytes must be >= 0, got {max_bytes}; set RLMX_CACHE_MAX_BYTES")
        self.folder = Path(folder).expanduser()
        self.max_bytes = max_bytes
        self.min_age_s = min_age_s
        self.rescan_s = rescan_s
        self._mu = threading.Lock()
        self._total: int | None = None  # this process's estimate of the folder's size
        self._scanned_at = 0.0
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o755)
        except OSError as e:
            raise StoreError(
                f"cannot create the blob cache folder {self.folder}: {e}; set RLMX_CACHE_DIR to a writable folder"
            ) from e

    def __repr__(self) -> str:
        return f"BlobCache({str(self.folder)!r}, max_bytes={self.max_bytes})"

    def path_of(self, key: str) -> Path:
        """Where the copy of ``key`` lives (whether or not it is cached)."""
        return self.folder.joinpath(*validate_key(key).split("/"))

    def get(self, key: str) -> Path | None:
        """The cached copy of ``key``, marked as used now; None when it is not cached."""
        path = self.path_of(key)
        try:
            if time.time() - path.stat().st_mtime <= 1.0:
                return path  # used just now: no eviction takes it (min_age_s is longer)
            with self._locked(shared=True):  # an eviction in progress sees the touch or we miss
                os.utime(path)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StoreError(f"cannot use the cached blob {path}: {e}; check RLMX_CACHE_DIR") from e
        return path

    def materialise(self, key: str, write: Callable[[BinaryIO], object]) -> Path:
        """Return the cached copy of ``key``, first calling ``write(file)`` to fill a new one
        when it is not cached. ``write`` gets a binary file open for writing; an exception it
        raises propagates and leaves nothing behind."""
        hit = self.get(key)
        if hit is not None:
            return hit
        path = self.path_of(key)
        try:
            self._mkdirs(path.parent)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP)
        except OSError as e:
            raise StoreError(f"cannot write to the blob cache {self.folder}: {e}; check RLMX_CACHE_DIR") from e
        try:
            os.fchmod(fd, 0o644 & ~_UMASK)
            with os.fdopen(fd, "wb") as f:
                write(f)
                size = f.tell()
            os.replace(tmp, path)  # atomic; a concurrent writer's identical copy may replace ours
        except BaseException as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(e, OSError):
                raise StoreError(f"cannot write {path} in the blob cache: {e}; check RLMX_CACHE_DIR") from e
            raise
        self._added(size)
        return path

    def put(self, key: str, data: bytes) -> Path:
        """Cache ``data`` as the copy of ``key`` (replacing any); returns its path."""
        self.discard(key)
        return self.materialise(key, lambda f: f.write(data))

    def discard(self, key: str) -> None:
        """Drop the cached copy of ``key`` when there is one (existing mappings stay valid)."""
        try:
            self.path_of(key).unlink()
        except FileNotFoundError:
            pass

    def total_bytes(self) -> int:
        """Bytes of all cached copies now (a scan of the folder)."""
        return sum(size for _, _, size in self._files())

    def evict(self) -> int:
        """Trim the cache to ``max_bytes`` now (least recently used first, never a file used in
        the last ``min_age_s`` seconds; stale temporary files go too). Returns the bytes left."""
        with self._locked():
            now = time.time()
            files = []
            for path, mtime, size in self._files(with_temps=True):
                if path.name.startswith(_TMP):
                    if now - mtime > max(self.min_age_s, 3600.0):  # left by a crashed writer
                        _unlink(path)
                    continue
                files.append((mtime, size, path))
            total = sum(size for _, size, _ in files)
            files.sort()
            for mtime, size, path in files:
                if total <= self.max_bytes:
                    break
                if now - mtime < self.min_age_s:
                    break  # sorted oldest first: every later file is as recent
                if _unlink(path):
                    total -= size
        with self._mu:
            self._total, self._scanned_at = total, time.monotonic()
        return total

    # -- internals -----------------------------------------------------------------------
    def _added(self, size: int) -> None:
        with self._mu:
            stale = self._total is None or time.monotonic() - self._scanned_at > self.rescan_s
            if self._total is not None:
                self._total += size
            due = stale or (self._total is not None and self._total > self.max_bytes)
        if due:
            self.evict()

    def _mkdirs(self, folder: Path) -> None:
        if folder.is_dir():
            return
        self._mkdirs(folder.parent)
        try:
            folder.mkdir(mode=0o755)
        except FileExistsError:
            pass

    def _files(self, *, with_temps: bool = False) -> Iterator[tuple[Path, float, int]]:
        stack = [self.folder]
        while stack:
            try:
                entries = list(os.scandir(stack.pop()))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                    continue
                if entry.name == _LOCK or (entry.name.startswith(_TMP) and not with_temps):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # evicted or replaced by another process meanwhile
                yield Path(entry.path), st.st_mtime, st.st_size

    class _Flock:
        def __init__(self, path: Path, shared: bool):
            self.path = path
            self.mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
            self.fd = -1

        def __enter__(self) -> None:
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(self.fd, self.mode)
            except OSError as e:
                if self.fd >= 0:
                    os.close(self.fd)
                raise StoreError(f"cannot lock the blob cache ({self.path}): {e}; check RLMX_CACHE_DIR") from e

        def __exit__(self, *exc: object) -> None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)

    def _locked(self, *, shared: bool = False) -> _Flock:
        return self._Flock(self.folder / _LOCK, shared)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
