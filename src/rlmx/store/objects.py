"""The S3 :class:`~rlmx.store.base.BlobStore`: blobs as objects under ``s3://BUCKET/PREFIX``.

Built on obstore (``obstore.store.S3Store``), configured from the usual ``AWS_*`` variables:
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), ``AWS_REGION``
or ``AWS_DEFAULT_REGION``, and ``AWS_ENDPOINT_URL`` for an S3-compatible server (MinIO, moto,
Ceph). Requests are path style unless ``AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true``. Plain
``http://`` endpoints are allowed for loopback hosts, elsewhere only with
``AWS_ALLOW_HTTP=true``.

Keys are those of :func:`~rlmx.store.blobs.validate_key`; the blob ``text/ab.txt`` of
``s3://b/rlmx`` is the object ``rlmx/text/ab.txt`` of bucket ``b``. ``put`` is atomic (S3
never shows a partial object); :meth:`ObjectBlobStore.put_if_absent` is a conditional
create (``If-None-Match: *``), so of several hosts racing exactly one wins.
:meth:`ObjectBlobStore.local_path` copies the blob into a :class:`~rlmx.store.blobcache.BlobCache`
for the REPL to memory-map: use it only for immutable (content-addressed) keys.
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, TypeVar
from urllib.parse import urlsplit

from rlmx.errors import ConfigError, NotFoundError, StoreError
from rlmx.store.base import BlobStore
from rlmx.store.blobcache import BlobCache
from rlmx.store.blobs import validate_key

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config, S3Store

__all__ = ["ObjectBlobStore", "parse_s3_url"]

_T = TypeVar("_T")
_TRUE = {"1", "true", "yes", "on"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET/PREFIX`` → ``(bucket, prefix)`` (prefix without slashes at its ends,
    ``""`` when none). Raises :class:`~rlmx.errors.ConfigError` for anything else."""
    parts = urlsplit(url)
    prefix = parts.path.strip("/")
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"RLMX_BLOB_URL={url!r} is not an s3://BUCKET/PREFIX URL; fix the variable")
    if prefix:
        try:
            validate_key(prefix)
        except ValueError as e:
            raise ConfigError(f"RLMX_BLOB_URL={url!r}: bad prefix ({e}); fix the variable") from None
    return parts.netloc, prefix


def _endpoint(config: dict[str, Any]) -> str | None:
    return (
        config.get("aws_endpoint_url_s3")
        or config.get("endpoint")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or os.environ.get("AWS_ENDPOINT")
    )


def _allow_http(endpoint: str | None) -> bool:
    if os.environ.get("AWS_ALLOW_HTTP", "").strip().lower() in _TRUE:
        return True
    if not endpoint or not endpoint.lower().startswith("http://"):
        return False
    host = urlsplit(endpoint).hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ConfigError(
            f"AWS_ENDPOINT_URL={endpoint!r} is plain http to a host that is not loopback; use https, "
            "or set AWS_ALLOW_HTTP=true if this network is trusted"
        )
    return True


def _first_line(e: BaseException) -> str:
    """obstore's message, one line: the S3 error code and message instead of its XML body,
    no debug dump, at most ~400 characters."""
    text = str(e).split("\n\nDebug source")[0]
    code = re.search(r"<Code>([^<]*)</Code>", text)
    msg = re.search(r"<Message>([^<]*)</Message>", text)
    if code:
        text = text[: text.find("<?xml")] if "<?xml" in text else text
        text = text.rstrip(": \n") + f": {code.group(1)}" + (f" ({msg.group(1)})" if msg else "")
    text = " ".join(text.split())
    return text if len(text) <= 400 else text[:400] + "…"


class ObjectBlobStore(BlobStore):
    """Blobs in the bucket and prefix of ``url`` (``s3://BUCKET/PREFIX``), with ``cache`` for
    :meth:`local_path`.

    ``config``, ``client_options``, ``retry_config``: passed to ``obstore.store.S3Store``
    (they override the ``AWS_*`` variables). Nothing is contacted until the first call
    (:meth:`check` tests the bucket at once). Raises :class:`~rlmx.errors.ConfigError` for a
    bad URL or endpoint; the methods raise :class:`~rlmx.errors.StoreError` (bucket missing,
    credentials refused, endpoint unreachable) or :class:`~rlmx.errors.NotFoundError`, each
    saying how to fix it, and ``ValueError`` for an invalid key.
    """

    def __init__(
        self,
        url: str,
        *,
        cache: BlobCache,
        config: S3Config | None = None,
        client_options: ClientConfig | None = None,
        retry_config: RetryConfig | None = None,
    ):
        from obstore.store import S3Store

        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        self.cache = cache
        cfg: dict[str, Any] = dict(config or {})
        self.endpoint = _endpoint(cfg)
        client: dict[str, Any] = dict(client_options or {})
        if "allow_http" not in client and _allow_http(self.endpoint):
            client["allow_http"] = True
        if self.endpoint and "endpoint" not in cfg and "aws_endpoint_url_s3" not in cfg:
            cfg["endpoint"] = self.endpoint
        try:
            self._store: S3Store = S3Store(
                self.bucket,
                prefix=self.prefix or None,
                config=cfg or None,  # type: ignore[arg-type]
                client_options=client or None,  # type: ignore[arg-type]
                retry_config=retry_config,
            )
        except Exception as e:  # obstore raises its own errors and ValueError for bad config
            raise ConfigError(
                f"cannot configure the S3 store {url!r}: {_first_line(e)}; check the AWS_* variables"
            ) from e

    def __repr__(self) -> str:
        return f"ObjectBlobStore({self.url!r}, endpoint={self.endpoint!r})"

    # -- errors ----------------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.url} (endpoint {self.endpoint or 'AWS default'})"

    def _raise(self, op: str, key: str, e: Exception) -> NoReturn:
        from obstore import exceptions as oe

        text = _first_line(e)
        if "NoSuchBucket" in str(e):
            raise StoreError(
                f"the bucket {self.bucket!r} of RLMX_BLOB_URL={self.url} does not exist at "
                f"{self.endpoint or 'AWS'}; create it (e.g. `aws s3 mb s3://{self.bucket}`) or fix RLMX_BLOB_URL"
            ) from e
        if isinstance(e, FileNotFoundError):
            raise NotFoundError(
                f"blob {key!r} not found in {self.url}; the store may have been pruned or RLMX_BLOB_URL points "
                "at another bucket or prefix — ingest the files again to recreate it"
            ) from e
        if isinstance(e, oe.PermissionDeniedError | oe.UnauthenticatedError) or any(
            s in str(e) for s in ("403 Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied")
        ):
            raise StoreError(
                f"S3 refused to {op} {key!r} in {self._where()}: {text}; check AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) and the bucket policy"
            ) from e
        if "error sending request" in str(e):
            raise StoreError(
                f"cannot reach S3 to {op} {key!r} in {self._where()}: {text}; check AWS_ENDPOINT_URL and the network"
            ) from e
        raise StoreError(f"S3 failed to {op} {key!r} in {self._where()}: {text}") from e

    def _call(self, op: str, key: str, fn: Callable[[], _T]) -> _T:
        from obstore.exceptions import BaseError

        try:
            return fn()
        except (BaseError, OSError, ValueError) as e:
            self._raise(op, key, e)

    # -- BlobStore -------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (one atomic PUT), replacing any previous blob."""
        import obstore

        path = validate_key(key)
        self._call("write", key, lambda: obstore.put(self._store, path, data))
        self.cache.discard(key)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create the blob unless one exists (``If-None-Match: *``); True when this call
        created it. A 409 (another conditional write to the key in flight) is retried."""
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        path = validate_key(key)
        for attempt in range(6):
            try:
                obstore.put(self._store, path, data, mode="create")
                return True
            except (AlreadyExistsError, PreconditionError):
                return False
            except Exception as e:
                if "409" in str(e) and attempt < 5:
                    time.sleep(0.05 * 2**attempt)  # S3 ConditionalRequestConflict: try again
                    continue
                self._raise("create", key, e)
        raise AssertionError("unreachable")

    def get(self, key: str) -> bytes:
        """The blob's bytes. Raises ``NotFoundError`` when absent."""
        import obstore

        path = validate_key(key)
        return self._call("read", key, lambda: bytes(obstore.get(self._store, path).bytes()))

    def exists(self, key: str) -> bool:
        """True when a blob is stored under ``key`` (a HEAD request)."""
        import obstore

        path = validate_key(key)
        try:
            self._call("check", key, lambda: obstore.head(self._store, path))
        except NotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        """Remove the blob (and its cached copy); deleting an absent key is a no-op."""
        import obstore

        path = validate_key(key)
        self.cache.discard(key)
        try:
            self._call("delete", key, lambda: obstore.delete(self._store, path))
        except NotFoundError:
            pass

    def local_path(self, key: str) -> Path:
        """A local copy of the blob in the cache (downloaded when not cached), for
        memory-mapping. Only for immutable keys (``text/...``, ``index/...``): a cached copy
        is never refreshed. Raises ``NotFoundError`` when absent."""
        import obstore

        path = validate_key(key)

        def download(f: BinaryIO) -> None:
            def fetch() -> None:
                for chunk in obstore.get(self._store, path).stream():
                    f.write(chunk)

            self._call("read", key, fetch)

        return self.cache.materialise(key, download)

    def check(self) -> None:
        """Contact the bucket now (one LIST request); raises ``StoreError`` saying how to fix
        a missing bucket, refused credentials or an unreachable endpoint."""
        import obstore

        def probe() -> None:
            for _ in obstore.list(self._store, chunk_size=1):
                break

        self._call("list", "/", probe)
