"""API keys, tenants and per-key rate limits.

A key is ``rlmx_`` + 43 URL-safe characters (256 random bits), shown once when created.
The store keeps only ``HMAC-SHA256(pepper, key)`` (hex), so a leaked database does not leak
keys, and a lookup is one indexed equality. The pepper is ``RLMX_KEY_PEPPER``; when it is
unset, one is generated on first use and kept in ``$RLMX_HOME/key_pepper`` with mode 0600
(keep that file, or every key stops working). Every key belongs to one tenant; every
session, execution, span and trace belongs to the tenant of the key that made it.

Rate limits (:class:`RateLimiter`) are counted in a shared storage, so they hold across
every API server of a deployment.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from limits import RateLimitItemPerMinute
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter

from ..errors import ConfigError
from ..ids import new_id
from ..store.base import ApiKeyRecord, MetadataStore
from .settings import ServiceSettings

__all__ = ["KEY_PREFIX", "KeyManager", "Principal", "RateLimiter", "load_pepper"]

KEY_PREFIX = "rlmx_"
PEPPER_FILE = "key_pepper"
_TENANT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


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

    def told(message: str) -> None:
        if callable(notice):
            notice(
                message
                if remote is not None
                else f"rlmx: RLMX_KEY_PEPPER is not set; generated one in {path} (mode 0600). "
                "Keep this file: API keys are stored as HMACs under it."
            )

    return shared_secret(
        remote, PEPPER_FILE, path, generate=lambda: secrets.token_urlsafe(32).encode("ascii"), on_create=told
    )


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
    """``per_minute`` requests a minute per key, counted in ``storage`` (a limits storage:
    :class:`~rlmx.service.ratelimit_storage.SQLRateLimitStorage` in the metadata database, so
    every API server of a deployment counts against the same limit).

    A fixed window per key (limits' :class:`~limits.strategies.FixedWindowRateLimiter`): the
    first request opens a one-minute window, at most ``per_minute`` requests are allowed in it,
    and the next window opens with the first request after it ends (so up to twice
    ``per_minute`` can pass around a window's end). Thread-safe when the storage is.
    """

    def __init__(self, per_minute: int, storage: Storage):
        self.item = RateLimitItemPerMinute(per_minute, namespace="rlmx-api-key")
        self.storage = storage
        self.strategy = FixedWindowRateLimiter(storage)

    def hit(self, key_id: str) -> float:
        """Count one request of ``key_id``: 0 when allowed, else the seconds (> 0) until its
        window ends. Raises what the storage raises (``StoreError`` for the SQL storage)."""
        if self.strategy.hit(self.item, key_id):
            return 0.0
        reset_at = self.strategy.get_window_stats(self.item, key_id).reset_time
        return max(reset_at - time.time(), 0.001)  # the window may have just ended: retry at once
