"""The embedded :class:`~rlmx.store.base.BlobStore`: one file per blob under a local folder.

Keys are relative paths made of ``/``-separated segments of ``[A-Za-z0-9._-]`` (no empty,
``.`` or ``..`` segment, no leading ``/``), e.g. ``"text/<sha256>.txt"``. A blob is written
to a temporary file beside its final path (``.tmp-*``, flushed and fsynced) and moved into
place with :func:`os.replace`, so readers never see a partial blob, even across processes.
:meth:`LocalBlobStore.put_if_absent` links the temporary file into place instead
(:func:`os.link` fails when the name exists): of several processes racing, one wins.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

from rlmx.errors import NotFoundError, StoreError
from rlmx.store.base import BlobStore

__all__ = ["LocalBlobStore", "validate_key"]

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def validate_key(key: str) -> str:
    """Return ``key`` when it is a valid blob key, else raise ``ValueError`` saying why."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"invalid blob key {key!r}: expected a non-empty string such as 'text/ab12.txt'")
    for seg in key.split("/"):
        if seg in ("", ".", "..") or not _SEGMENT.fullmatch(seg):
            raise ValueError(
                f"invalid blob key {key!r}: segments must match [A-Za-z0-9._-]+, "
                "be non-empty and not '.' or '..' (no leading or doubled '/')"
            )
    if key.split("/")[-1].startswith(".tmp-"):
        raise ValueError(f"invalid blob key {key!r}: names starting with '.tmp-' are reserved")
    return key


class LocalBlobStore(BlobStore):
    """Blobs as files under ``root`` (created when missing).

    ``fsync``: flush each blob to disk before it becomes visible (default True: a crash never
    leaves a truncated blob under its final name). Raises :class:`~rlmx.errors.StoreError`
    when the folder cannot be written, ``ValueError`` for an invalid key.
    """

    def __init__(self, root: str | Path, *, fsync: bool = True):
        self.root = Path(root).expanduser()
        self.fsync = fsync
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create blob folder {self.root}: {e}; check RLMX_HOME") from e

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _missing(self, key: str) -> NotFoundError:
        return NotFoundError(
            f"blob {key!r} not found under {self.root}; the store may have been moved or "
            "pruned — ingest the files again to recreate it"
        )

    def _write_temp(self, path: Path, data: bytes) -> str:
        """Write ``data`` to a new temporary file beside ``path``; returns its name."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            # mkstemp makes 0600; blobs get the usual 0644 & ~umask so that the sandboxed
            # REPL, which runs under its own uid, can map them (the store folder's own
            # permissions keep other users out)
            os.fchmod(fd, 0o644 & ~_UMASK)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
        except BaseException:
            _unlink(tmp)
            raise
        return tmp

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` (bytes) under ``key`` atomically, replacing any previous blob."""
        path = self._path(key)
        try:
            tmp = self._write_temp(path, data)
            try:
                os.replace(tmp, path)
            except BaseException:
                _unlink(tmp)
                raise
        except OSError as e:
            raise StoreError(f"cannot write blob {key!r} under {self.root}: {e}") from e

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write ``data`` under ``key`` unless a blob is there; True when this call created it.

        The blob is written to a temporary file and hard-linked into place: the link fails
        when the name exists, so of several processes racing exactly one wins, and readers
        see the whole blob or none. On a file system without hard links it falls back to an
        exclusive create (still one winner; a reader may briefly see a partial blob).
        Raises :class:`~rlmx.errors.StoreError` when the folder cannot be written."""
        path = self._path(key)
        try:
            tmp = self._write_temp(path, data)
            try:
                os.link(tmp, path)
                return True
            except FileExistsError:
                return False
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                return self._create_exclusive(path, data)
            finally:
                _unlink(tmp)
        except OSError as e:
            raise StoreError(f"cannot write blob {key!r} under {self.root}: {e}") from e

    def put_file(self, key: str, source: str | Path, *, if_absent: bool = False) -> bool:
        """Store the file at ``source`` under ``key`` without reading it into memory (copied in
        1 MiB blocks to a temporary file, fsynced, then moved into place like :meth:`put`, or
        linked like :meth:`put_if_absent` when ``if_absent``). ``source`` is left as it is.
        Returns True when this call wrote the blob. Raises ``StoreError`` when ``source``
        cannot be read or the folder cannot be written."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                os.fchmod(fd, 0o644 & ~_UMASK)
                with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                    if self.fsync:
                        out.flush()
                        os.fsync(out.fileno())
                if not if_absent:
                    os.replace(tmp, path)
                    return True
                try:
                    os.link(tmp, path)
                    return True
                except FileExistsError:
                    return False
            finally:
                _unlink(tmp)
        except OSError as e:
            raise StoreError(f"cannot write blob {key!r} under {self.root}: {e}") from e

    def _create_exclusive(self, path: Path, data: bytes) -> bool:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644 & ~_UMASK)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        return True

    def get(self, key: str) -> bytes:
        """Return the blob's bytes. Raises ``NotFoundError`` when absent."""
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise self._missing(key) from None

    def exists(self, key: str) -> bool:
        """True when a blob is stored under ``key``."""
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove the blob; deleting an absent key is a no-op."""
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def local_path(self, key: str) -> Path:
        """Return the blob's file path (for memory-mapping). Raises ``NotFoundError``."""
        path = self._path(key)
        if not path.is_file():
            raise self._missing(key)
        return path
