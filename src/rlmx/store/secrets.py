"""Secrets every process of one store must share: the REPL snapshot key and the API-key pepper.

:func:`shared_secret` returns the secret ``name``, generating it on first use. Where it lives
depends on the blob store:

* **remote** (an :class:`~rlmx.store.objects.ObjectBlobStore`, possibly behind wrappers that
  expose it as ``.inner``): the blob ``secrets/<name>``, so every server and worker sharing
  the bucket uses the same value (read once per process, then remembered). It is created with
  :meth:`~rlmx.store.base.BlobStore.put_if_absent`: of several servers starting at once one
  wins and the others read the winner's value. Anyone who can read the bucket can read it,
  as they can every text of the store: protect the bucket.
* **local** (the embedded store): the file ``local_path`` (mode 0600), written to a
  temporary file and hard-linked into place, so it appears complete or not at all and only
  the first process's link wins.

Callers let their environment variables (``RLMX_SANDBOX_SNAPSHOT_KEY``, ``RLMX_KEY_PEPPER``)
win before calling this.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from rlmx.errors import ConfigError, NotFoundError
from rlmx.store.base import BlobStore

__all__ = ["configured_remote_blobs", "remote_blobs", "shared_secret"]

_NAME = re.compile(r"[A-Za-z0-9_-]+")


def remote_blobs(blobs: object) -> BlobStore | None:
    """The remote store behind ``blobs`` (a :class:`~rlmx.store.base.BlobStore`; wrappers
    such as a lease-fenced view are unwrapped through ``.inner``), or None when the store is
    local or ``blobs`` is None."""
    from rlmx.store.objects import ObjectBlobStore

    for _ in range(8):
        if isinstance(blobs, ObjectBlobStore):
            return blobs
        blobs = getattr(blobs, "inner", None)
        if not isinstance(blobs, BlobStore):
            return None
    return None


def configured_remote_blobs(home: Path) -> BlobStore | None:
    """The remote blob store that ``RLMX_BLOB_URL`` names (for callers not given a store),
    or None when it names a local folder or is unset."""
    from rlmx.config import Settings
    from rlmx.store import open_blobs

    settings = Settings(home=home)
    url = settings.blob_url or ""
    if not url.startswith("s3://"):
        return None
    cache = Path(settings.cache_dir).expanduser() if settings.cache_dir else Path(home).expanduser() / "cache"
    return open_blobs(url, cache_dir=cache, cache_max_bytes=settings.cache_max_bytes)


def _new_secret() -> bytes:
    return secrets.token_hex(32).encode("ascii")


def shared_secret(
    blobs: BlobStore | None,
    name: str,
    local_path: Path,
    *,
    generate: Callable[[], bytes] = _new_secret,
    on_create: Callable[[str], object] | None = None,
) -> bytes:
    """The secret ``name`` (``[A-Za-z0-9_-]+``) shared by every process of the store: the
    blob ``secrets/<name>`` when ``blobs`` is remote, else the file ``local_path``; created
    with ``generate()`` (default 64 hex characters) when absent, and ``on_create(message)``
    told so. Returns the bytes, surrounding whitespace stripped.

    Raises :class:`~rlmx.errors.ConfigError` when the stored secret is empty (delete it to
    generate another: what it protected becomes unusable), :class:`~rlmx.errors.StoreError`
    when the store fails, ``OSError`` when the local file cannot be written.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid secret name {name!r}: use [A-Za-z0-9_-]+")
    remote = remote_blobs(blobs)
    if remote is not None:
        return _remote_secret(remote, name, generate, on_create)
    return _local_secret(Path(local_path), generate, on_create)


def _usable(value: bytes, where: str) -> bytes:
    value = value.strip()
    if not value:
        raise ConfigError(
            f"the secret {where} is empty; delete it to generate a new one (what it protected — API keys, "
            "sealed snapshots — then stops working), or set the matching RLMX_* variable"
        )
    return value


_REMOTE: dict[tuple[str, str], bytes] = {}  # (store URL, name) -> secret: one GET per process


def _remote_secret(
    blobs: BlobStore, name: str, generate: Callable[[], bytes], on_create: Callable[[str], object] | None
) -> bytes:
    url = str(getattr(blobs, "url", repr(blobs)))
    if (url, name) in _REMOTE:
        return _REMOTE[url, name]
    key = f"secrets/{name}"
    where = f"{url!r} blob {key!r}"
    try:
        value = _usable(blobs.get(key), where)
    except NotFoundError:
        value = generate().strip()
        if blobs.put_if_absent(key, value + b"\n"):
            if callable(on_create):
                on_create(f"rlmx: generated the shared secret {name} as {where}; keep it: the store depends on it")
        else:
            value = _usable(blobs.get(key), where)  # another server won the race: use its secret
    _REMOTE[url, name] = value
    return value


def _read_local(path: Path) -> bytes | None:
    for _ in range(40):  # up to ~2 s for a writer without hard links that has not finished
        try:
            value = path.read_bytes().strip()
        except FileNotFoundError:
            return None
        if value:
            return value
        time.sleep(0.05)
    return _usable(b"", str(path))


def _theirs(path: Path) -> bytes:
    value = _read_local(path)
    if value is None:
        raise ConfigError(f"the secret file {path} appeared and vanished; start again")
    return value


def _local_secret(path: Path, generate: Callable[[], bytes], on_create: Callable[[str], object] | None) -> bytes:
    existing = _read_local(path)
    if existing is not None:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    value = generate().strip()
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(value + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails when another process linked first
        except FileExistsError:
            return _theirs(path)
        except OSError as e:  # no hard links on this file system: create it exclusively
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            try:
                out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return _theirs(path)
            with os.fdopen(out, "wb") as f:  # readers wait while it is empty
                f.write(value + b"\n")
    finally:
        tmp.unlink(missing_ok=True)
    if callable(on_create):
        on_create(f"rlmx: generated the secret {path} (mode 0600); keep this file: the store depends on it")
    return value
