"""Document sources and the pool of open memory-mapped readers (inside the REPL process)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from rlmx.corpus.canonical import TextReader

__all__ = ["MAX_OPEN_READERS", "ReaderPool", "Source"]

MAX_OPEN_READERS = 64
"""Open :class:`TextReader`s (file descriptor + mmap each) kept at once."""


class Source:
    """One stored document: its files, and an unlogged absolute reader."""

    __slots__ = ("doc_id", "index_path", "length", "meta", "name", "pool", "spec", "text_path")

    def __init__(self, d: Mapping[str, Any], pool: ReaderPool) -> None:
        self.spec = dict(d)
        self.doc_id = str(d["doc_id"])
        self.name = str(d.get("name") or self.doc_id)
        self.length = int(d["length"])
        self.text_path = str(d["text_path"])
        self.index_path = d.get("index_path")
        self.meta = dict(d.get("meta") or {})
        self.pool = pool

    def read(self, start: int, end: int) -> str:
        """Canonical text ``[start, end)`` (absolute code points), not logged."""
        return self.pool.read(self, start, end)

    def check(self) -> None:
        """Raise ``FileNotFoundError``/``ValueError`` when the files cannot be read."""
        size = os.stat(self.text_path).st_size
        if size != self.length and not (self.index_path and os.path.exists(self.index_path)):
            raise ValueError(
                f"document {self.doc_id}: {self.text_path} is non-ASCII (or not {self.length} "
                "characters long) and needs its offset index"
            )


class ReaderPool:
    """Open :class:`TextReader`s, least recently used closed beyond ``max_open``."""

    def __init__(self, max_open: int = MAX_OPEN_READERS) -> None:
        self._open: OrderedDict[int, TextReader] = OrderedDict()
        self._max = max_open
        self._lock = threading.Lock()

    def read(self, src: Source, start: int, end: int) -> str:
        with self._lock:
            r = self._open.get(id(src))
            if r is None:
                r = TextReader(src.text_path, src.length, src.index_path)
                self._open[id(src)] = r
                if len(self._open) > self._max:
                    self._open.popitem(last=False)[1].close()
            else:
                self._open.move_to_end(id(src))
            return r.read(start, end)
