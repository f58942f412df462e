"""Storage: metadata (:class:`MetadataStore`) and blobs (:class:`BlobStore`) behind small
interfaces, plus :func:`open_store` for the embedded layout under ``$RLMX_HOME``::

    $RLMX_HOME/rlmx.sqlite    metadata (documents, corpora, executions, turns, cache)
    $RLMX_HOME/blobs/         canonical texts and their offset indexes
    $RLMX_HOME/index.sqlite   FTS5 keyword index (rlmx.corpus.index)
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
    from rlmx.store.sqlite import SQLiteMetadataStore

__all__ = [
    "BlobStore",
    "CorpusRecord",
    "DocumentRecord",
    "ExecutionRecord",
    "FailedDocument",
    "LocalBlobStore",
    "MetadataStore",
    "SQLiteMetadataStore",
    "Store",
    "open_store",
]


@dataclass
class Store:
    """One opened store: ``meta`` (metadata), ``blobs`` (canonical texts), ``index_path``
    (the FTS5 file, opened with :class:`rlmx.corpus.index.SearchIndex`), under ``home``."""

    home: Path
    meta: MetadataStore
    blobs: BlobStore
    index_path: Path

    def close(self) -> None:
        """Release database connections held by the metadata store."""
        close = getattr(self.meta, "close", None)
        if callable(close):
            close()


def open_store(home: str | Path | None = None) -> Store:
    """Open (creating when missing) the embedded store under ``home``.

    ``home`` defaults to ``Settings().home`` (``$RLMX_HOME``, else ``~/.local/share/rlmx``).
    Creates ``home/rlmx.sqlite`` and ``home/blobs/``; the index lives at
    ``home/index.sqlite``. Raises :class:`~rlmx.errors.StoreError` when the folder cannot be
    created or the database cannot be opened.
    """
    if home is None:
        from rlmx.config import Settings  # pydantic-settings: loaded only when needed

        home = Settings().home
    root = Path(home).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the rlmx home folder {root}: {e}; set RLMX_HOME to a writable folder") from e
    root = root.resolve()
    from rlmx.store.blobs import LocalBlobStore
    from rlmx.store.sqlite import SQLiteMetadataStore

    return Store(
        home=root,
        meta=SQLiteMetadataStore(root / "rlmx.sqlite"),
        blobs=LocalBlobStore(root / "blobs"),
        index_path=root / "index.sqlite",
    )


def __getattr__(name: str) -> Any:  # SQLAlchemy loads only when a store is opened
    if name == "SQLiteMetadataStore":
        from rlmx.store.sqlite import SQLiteMetadataStore

        return SQLiteMetadataStore
    if name == "LocalBlobStore":
        from rlmx.store.blobs import LocalBlobStore

        return LocalBlobStore
    raise AttributeError(f"module 'rlmx.store' has no attribute {name!r}")
