"""Keyword search over canonical texts: SQLite FTS5 with BM25 ranking.

An index file holds the chunks of a set of Documents. Each corpus has its own index, an
immutable blob ``index/v1/<corpus_id>.fts5`` built once when the corpus is ingested
(:mod:`rlmx.corpus.corpus_index`; ``docs/search.md`` says why), so BM25 statistics are the
corpus's own and any host reads the same file through the blob store. Chunks are about
``CHUNK_CHARS`` characters, cut at a newline or space; each row keeps its span
``(doc_id, start, end)`` so hits carry spans. The FTS5 table is contentless (the text lives
in the blob store), tokenised with ``porter unicode61``. Scores are SQLite's ``bm25()``,
negated so that larger is better; ties are broken by ``(doc_id, start)``.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CHUNK_CHARS", "SearchIndex", "SearchRow", "chunk_spans", "fts_query"]

CHUNK_CHARS = 1000
BUSY_TIMEOUT_S = 30.0  # writers wait this long for another process's write lock

# fmt: off
_STOPWORDS = frozenset([
    "a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "did", "for", "from", "has",
    "have", "how", "i", "in", "is", "it", "its", "of", "on", "or", "that", "the", "their",
    "there", "these", "this", "those", "to", "was", "were", "what", "when", "where", "which",
    "who", "whom", "whose", "why", "will", "with", "you", "your",
])
# fmt: on

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL,
                                   start INTEGER NOT NULL, "end" INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS indexed_docs (doc_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS index_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    body, content='', tokenize='porter unicode61');
"""


@dataclass(frozen=True, slots=True)
class SearchRow:
    """One BM25 hit: a chunk span of a Document, ``score`` larger = better."""

    doc_id: str
    start: int
    end: int
    score: float


def chunk_spans(text: str, size: int = CHUNK_CHARS) -> Iterator[tuple[int, int]]:
    """Yield ``(start, end)`` chunk spans covering ``text``, cut at a newline or space."""
    n = len(text)
    pos = 0
    while pos < n:
        end = min(n, pos + size)
        if end < n:
            cut = text.rfind("\n", pos + size // 2, end)
            if cut < 0:
                cut = text.rfind(" ", pos + size // 2, end)
            if cut > pos:
                end = cut + 1
        yield pos, end
        pos = end


def fts_query(query: str) -> str:
    """Turn free text into an FTS5 query: quoted phrases kept, other words OR-ed, stopwords
    dropped. Returns ``""`` when nothing searchable is left."""
    phrases = re.findall(r'"([^"]+)"', query)
    rest = re.sub(r'"[^"]*"', " ", query)
    terms = []
    for p in phrases:
        words = re.findall(r"\w+", p.lower())
        if words:
            terms.append('"' + " ".join(words) + '"')
    words = [w for w in re.findall(r"\w+", rest.lower()) if w not in _STOPWORDS]
    if not words and not terms:
        words = re.findall(r"\w+", rest.lower())
    seen: set[str] = set()
    for w in words:
        if w not in seen:
            seen.add(w)
            terms.append(f'"{w}"')
    return " OR ".join(terms)


class SearchIndex:
    """The FTS5 chunk index. ``SearchIndex(path, readonly=False, immutable=False, bulk=False)``.

    ``immutable`` (read-only only): open without locks or WAL files, for a file that never
    changes (a content-addressed index blob) or a reader that can create no file beside it.
    ``bulk`` (writable only): a private file being built by one writer (no journal, no
    fsync; see :class:`rlmx.corpus.corpus_index.IndexBuilder`) — a crash leaves it corrupt.
    Raises ``sqlite3.Error`` on a corrupt file; a missing file in read-only mode yields an
    index with no rows.
    """

    def __init__(
        self, path: str | Path, *, readonly: bool = False, immutable: bool = False, bulk: bool = False
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if bulk and not readonly:  # one writer, maybe from a thread of its own (corpus.writer)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.executescript(_SCHEMA)
        elif readonly:
            if not self.path.exists():
                self._db = sqlite3.connect(":memory:")
                self._db.executescript(_SCHEMA)
            else:
                opts = "mode=ro&immutable=1" if immutable else "mode=ro"
                self._db = sqlite3.connect(f"file:{self.path}?{opts}", uri=True)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            self._db.execute("PRAGMA journal_mode=WAL")
            # derived data: commits need not reach the disk one by one (WAL stays consistent)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def has(self, doc_id: str) -> bool:
        """True when ``doc_id`` is indexed."""
        row = self._db.execute("SELECT 1 FROM indexed_docs WHERE doc_id=?", (doc_id,)).fetchone()
        return row is not None

    def add(self, doc_id: str, text: str) -> int:
        """Index ``text`` as ``doc_id`` (no-op when already indexed). Returns chunks added.

        Safe when several processes index the same document at once: the write lock is
        taken first and the ``indexed_docs`` row claimed inside the same transaction."""
        return self.add_chunks(doc_id, ((start, end, text[start:end]) for start, end in chunk_spans(text)))

    def add_chunks(self, doc_id: str, chunks: Iterable[tuple[int, int, str]]) -> int:
        """Index ``(start, end, chunk text)`` triples as ``doc_id`` (:meth:`add` cuts them with
        :func:`chunk_spans`; :class:`rlmx.corpus.stream.ChunkCutter` cuts a text in pieces the
        same way). No-op when already indexed. Returns chunks added."""
        if self.has(doc_id):
            return 0
        n = 0
        with self._db:
            if not self._db.in_transaction:
                self._db.execute("BEGIN IMMEDIATE")
            claimed = self._db.execute("INSERT OR IGNORE INTO indexed_docs(doc_id) VALUES (?)", (doc_id,))
            if claimed.rowcount == 0:  # another writer indexed it meanwhile
                return 0
            for start, end, body in chunks:
                cur = self._db.execute('INSERT INTO chunks(doc_id, start, "end") VALUES (?,?,?)', (doc_id, start, end))
                self._db.execute("INSERT INTO chunks_fts(rowid, body) VALUES (?,?)", (cur.lastrowid, body))
                n += 1
        return n

    def add_many(self, docs: Iterable[tuple[str, str]]) -> int:
        """Index ``(doc_id, text)`` pairs; returns chunks added."""
        return sum(self.add(doc_id, text) for doc_id, text in docs)

    def info(self) -> dict[str, str]:
        """The file's ``index_info`` rows (``format``, ``corpus_id``, ``documents``, ``chunks``
        of a per-corpus index); empty for a store-wide file of an older version."""
        try:
            return dict(self._db.execute("SELECT key, value FROM index_info").fetchall())
        except sqlite3.OperationalError:
            return {}

    def seal(self, info: dict[str, str]) -> None:
        """Write ``info`` into ``index_info``, merge the FTS segments into one (``optimize``)
        and compact the file (``VACUUM``): smaller and faster to query. For an index about to
        become immutable."""
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO index_info(key, value) VALUES (?,?)", sorted(info.items()))
            self._db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')")
        self._db.execute("VACUUM")

    def search(self, query: str, k: int = 10, doc_ids: Sequence[str] | None = None) -> list[SearchRow]:
        """Return up to ``k`` chunks ranked by BM25 (ties by ``doc_id``, ``start``),
        restricted to ``doc_ids`` when given. Offsets are code points of canonical text."""
        q = fts_query(query)
        if not q or k <= 0:
            return []
        sql = (
            'SELECT c.doc_id, c.start, c."end", bm25(chunks_fts) AS s FROM chunks_fts '
            "JOIN chunks c ON c.id = chunks_fts.rowid WHERE chunks_fts MATCH ?"
        )
        params: list[object] = [q]
        if doc_ids is not None:
            sql += " AND c.doc_id IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(doc_ids)))
        sql += " ORDER BY s, c.doc_id, c.start LIMIT ?"
        params.append(int(k))
        rows = self._db.execute(sql, params).fetchall()
        return [SearchRow(d, s, e, -float(score)) for d, s, e, score in rows]
