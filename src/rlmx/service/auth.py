"""API keys, tenants and per-key rate limits.

A key is ``rlmx_`` + 43 URL-safe characters (256 random bits), shown once when created.
The store keeps only ``HMAC-SHA256(pepper, key)`` (hex), so a leaked database does not leak
keys, and a lookup is one indexed equality. The pepper is ``RLMX_KEY_PEPPER``; when it is
unset, one is generated on first use and kept in ``$RLMX_HOME/key_pepper`` with mode 0600
(keep that file, or every key stops working). Every key belongs to one tenant; every
session, execution, span and trace belongs to the tenant of the key that made it.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..ids import new_id
from ..store.base import ApiKeyRecord, MetadataStore
from .settings import ServiceSettings

__all__ = ["KEY_PREFIX", "KeyManager", "Principal", "RateLimiter", "load_pepper"]

KEY_PREFIX = "rlmx_"
PEPPER_FILE = "key_pepper"
_TENANT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _read_pepper(path: Path) -> bytes | None:
    """The pepper in ``path``; None when the file is absent. A file that stays empty (a
    writer of an older version crashed) is an error, never an empty key."""
    for _ in range(40):  # up to ~2 s for a writer that has not finished (older versions)
        try:
            value = path.read_bytes().strip()
        except FileNotFoundError:
            return None
        if value:
            return value
        time.sleep(0.05)
    raise ConfigError(
        f"the key pepper file {path} is empty; set RLMX_KEY_PEPPER, or delete the file to generate a new "
        "pepper (existing API keys then stop working)"
    )


def _theirs(path: Path) -> bytes:
    theirs = _read_pepper(path)
    if theirs is None:  # deleted in between: do not guess
        raise ConfigError(f"the key pepper file {path} appeared and vanished; start again")
    return theirs


def load_pepper(settings: ServiceSettings, notice: object = None, blobs: object = None) -> bytes:
    """The pepper: ``RLMX_KEY_PEPPER``, else the blob ``secrets/key_pepper`` when the blob
    store (``blobs``, a :class:`~rlmx.store.base.BlobStore`, else the one ``RLMX_BLOB_URL``
    names) is remote, shared by every server
    (:func:`rlmx.store.secrets.shared_secret`), else ``$RLMX_HOME/key_pepper`` (created with
    mode 0600 when absent; ``notice(message)`` is told so). Processes starting together agree on
    one pepper: it is written to a temporary file and linked into place, so the file
    appears complete or not at all, and only the first link wins."""
    if settings.key_pepper is not None and settings.key_pepper.get_secret_value():
        return settings.key_pepper.get_secret_value().encode("utf-8")
    home = Path(settings.home).expanduser()
    path = home / PEPPER_FILE
    from ..store.secrets import configured_remote_blobs, remote_blobs, shared_secret

    remote = remote_blobs(blobs) if blobs is not None else configured_remote_blobs(home)
    if remote is not None:
        return shared_secret(remote, PEPPER_FILE, path, on_create=notice if callable(notice) else None)
    existing = _read_pepper(path)
    if existing is not None:
        return existing
    home.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32).encode("ascii")
    tmp = home / f".{PEPPER_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(value + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails when another process linked its pepper first
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
    if callable(notice):
        notice(
            f"rlmx: RLMX_KEY_PEPPER is not set; generated one in {path} (mode 0600). "
            "Keep this file: API keys are stored as HMACs under it."
        )
    return value


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant and the key's id."""

    tenant: str
    key_id: str


class KeyManager:
    """Creates, checks and revokes API keys in ``meta`` under ``pepper``."""

    def __init__(self, meta: MetadataStore, pepper: bytes):
        self.meta = meta
        self.pepper = pepper

    def digest(self, key: str) -> str:
        return hmac.new(self.pepper, key.encode("utf-8"), hashlib.sha256).hexdigest()

    def create(self, tenant: str, name: str = "") -> tuple[str, ApiKeyRecord]:
        """A new key for ``tenant``: ``(key, record)``; the key is not stored anywhere."""
        if not tenant or len(tenant) > 128 or not set(tenant) <= _TENANT_CHARS:
            raise ConfigError(f"invalid tenant {tenant!r}: use 1-128 characters of [A-Za-z0-9._-]")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        rec = ApiKeyRecord(key_id=new_id("key"), tenant=tenant, key_hmac=self.digest(key), name=name)
        self.meta.put_api_key(rec)
        return key, rec

    def check(self, key: str) -> Principal | None:
        """The principal of a valid, unrevoked key, else None."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        rec = self.meta.find_api_key(self.digest(key))
        if rec is None or rec.revoked_at is not None:
            return None
        return Principal(rec.tenant, rec.key_id)

    def revoke(self, key_or_id: str) -> bool:
        """Revoke by key id (``key_…``) or by the key itself; False when unknown."""
        if key_or_id.startswith(KEY_PREFIX):
            rec = self.meta.find_api_key(self.digest(key_or_id))
            if rec is None:
                return False
            key_or_id = rec.key_id
        return self.meta.revoke_api_key(key_or_id)


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests a minute, bursts up to that many.
    In-process (each API server counts its own requests). Thread-safe."""

    def __init__(self, per_minute: int):
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key_id: str) -> float:
        """Take one token; returns 0 when allowed, else the seconds until the next token."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / self.rate
