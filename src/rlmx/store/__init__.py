"""Storage: metadata (:class:`MetadataStore`) and blobs (:class:`BlobStore`) behind small
interfaces, plus :func:`open_store` for the embedded layout under ``$RLMX_HOME``::

    $RLMX_HOME/rlmx.sqlite    metadata (documents, corpora, executions, turns, cache)
    $RLMX_HOME/blobs/         canonical texts, their offset indexes, and one FTS5 keyword
                              index per corpus (index/v1/<corpus_id>.fts5, rlmx.corpus.corpus_index)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlmx.errors import StoreError
from rlmx.store.base import (
    BlobStore,
    CorpusRecord,
    DocumentRecord,
    ExecutionRecord,
    FailedDocument,
    MetadataStore,
)

if TYPE_CHECKING:
    from rlmx.store.blobs import LocalBlobStore
    from rlmx.store.sql import SQLMetadataStore
    from rlmx.store.sqlite import SQLiteMetadataStore

__all__ = [
    "BlobStore",
    "CorpusRecord",
    "DocumentRecord",
    "ExecutionRecord",
    "FailedDocument",
    "LocalBlobStore",
    "MetadataStore",
    "SQLMetadataStore",
    "SQLiteMetadataStore",
    "Store",
    "open_blobs",
    "open_metadata",
    "open_store",
]


@dataclass
class Store:
    """One opened store: ``meta`` (metadata), ``blobs`` (canonical texts, per-corpus keyword
    indexes — see :mod:`rlmx.corpus.corpus_index` —, uploads, REPL snapshots), and ``home``,
    this process's local folder (the SQLite file and blob folder of the embedded mode, the
    read cache of remote blobs)."""

    home: Path
    meta: MetadataStore
    blobs: BlobStore

    def close(self) -> None:
        """Release database connections held by the metadata store."""
        close = getattr(self.meta, "close", None)
        if callable(close):
            close()


def open_store(
    home: str | Path | None = None,
    *,
    database_url: str | None = None,
    blob_url: str | None = None,
    migrate: bool = False,
) -> Store:
    """Open (creating when missing) the store: metadata, blobs and the local folder ``home``.

    ``home`` defaults to ``Settings().home`` (``$RLMX_HOME``, else ``~/.local/share/rlmx``).
    ``database_url`` (else ``$RLMX_DATABASE_URL``, else the SQLite file ``home/rlmx.sqlite``)
    and ``blob_url`` (else ``$RLMX_BLOB_URL``, else the folder ``home/blobs``) choose the
    backends: see :func:`open_metadata` and :func:`open_blobs`. Keyword indexes are blobs
    too (one per corpus), so those two URLs describe the whole store: hosts sharing them
    share everything. Raises :class:`~rlmx.errors.StoreError` when the folder cannot be
    created or a backend cannot be opened, :class:`~rlmx.errors.ConfigError` for a URL of an
    unknown kind.
    """
    from rlmx.config import Settings  # pydantic-settings: loaded only when needed

    settings = Settings() if home is None else Settings(home=Path(home))
    root = Path(settings.home).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise StoreError(f"cannot create the rlmx home folder {root}: {e}; set RLMX_HOME to a writable folder") from e
    root = root.resolve()
    db = database_url or settings.database_url or str(root / "rlmx.sqlite")
    blob = blob_url or settings.blob_url or str(root / "blobs")
    cache = Path(settings.cache_dir).expanduser() if settings.cache_dir else root / "cache"
    return Store(
        home=root,
        meta=open_metadata(db, migrate=migrate),
        blobs=open_blobs(blob, cache_dir=cache, cache_max_bytes=settings.cache_max_bytes),
    )


def open_metadata(url: str, *, migrate: bool = False) -> MetadataStore:
    """The metadata store at ``url``: a SQLite file path, ``sqlite:///PATH``, ``:memory:``,
    or ``postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE`` (the same SQLAlchemy schema,
    migrated by alembic: :mod:`rlmx.store.migrate`).

    A SQLite store is upgraded to the current schema when opened. A PostgreSQL store that is
    empty or behind is upgraded when ``migrate`` (servers and workers pass True), else
    :class:`~rlmx.errors.StoreError` says to run ``rlmx db upgrade``. Raises
    :class:`~rlmx.errors.ConfigError` for a malformed URL, ``StoreError`` when the database
    cannot be opened.
    """
    from rlmx.store.sql import SQLMetadataStore

    return SQLMetadataStore(url, migrate=migrate)


def open_blobs(url: str, *, cache_dir: Path, cache_max_bytes: int) -> BlobStore:
    """The blob store at ``url``: a folder path or ``file:///PATH`` (local files), or
    ``s3://BUCKET/PREFIX`` (obstore; remote blobs are read through a bounded local cache under
    ``cache_dir``, at most ``cache_max_bytes`` bytes)."""
    from rlmx.errors import ConfigError

    if url.startswith("s3://"):
        from rlmx.store.blobcache import BlobCache
        from rlmx.store.objects import ObjectBlobStore

        return ObjectBlobStore(url, cache=BlobCache(cache_dir, cache_max_bytes))
    if "://" in url and not url.startswith("file://"):
        raise ConfigError(
            f"RLMX_BLOB_URL={url!r} is not a folder, file:///PATH or s3://BUCKET/PREFIX URL; fix the variable"
        )
    from rlmx.store.blobs import LocalBlobStore

    return LocalBlobStore(url.removeprefix("file://"))


def __getattr__(name: str) -> Any:  # SQLAlchemy loads only when a store is opened
    if name in ("SQLiteMetadataStore", "SQLMetadataStore"):
        from rlmx.store.sql import SQLMetadataStore

        return SQLMetadataStore
    if name == "LocalBlobStore":
        from rlmx.store.blobs import LocalBlobStore

        return LocalBlobStore
    raise AttributeError(f"module 'rlmx.store' has no attribute {name!r}")
