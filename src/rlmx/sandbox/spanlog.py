"""The REPL's span log: which canonical text the code read or scanned, and which sub-calls
that text fed. Runs inside the REPL process; the engine derives citations from it.

Events are plain dicts shaped like :class:`rlmx.sandbox.base.SpanEvent`:
``{"kind": "read"|"scan", "doc_id", "start", "end", "turn", "subcalls": [str]}`` with
absolute code-point offsets (end exclusive).

* ``read``: text returned to the code (slicing, ``str(doc)``, ``Hit.text``, previews).
* ``scan``: a match found by ``find``/``grep``/``search`` (not a citation by itself).

Identical events of one turn are logged once. Read events are kept for the whole execution
(at most ``max_events``, oldest dropped first) so that a later ``llm_query`` whose prompt
contains their text tags them with its sub-call id; their text is never kept — it is read
again from the memory-mapped document when needed, so memory does not grow with the text
read. Reads shorter than ``min_tag_chars`` characters (or blank) are never tagged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["SpanLog"]

TextSource = Callable[[int, int], str]
"""``read(start, end) -> str``: unlogged absolute read of one document's canonical text."""

_DIRECT_TAG_MAX = 256  # up to this many kept reads, tag by plain substring tests


class _Event:
    __slots__ = (
        "anchor",
        "doc_id",
        "end",
        "kind",
        "read",
        "start",
        "subcalls",
        "text_hash",
        "turn",
    )

    def __init__(self, kind: str, doc_id: str, start: int, end: int, turn: int, read: TextSource | None) -> None:
        self.kind = kind
        self.doc_id = doc_id
        self.start = start
        self.end = end
        self.turn = turn
        self.subcalls: list[str] = []
        self.read = read
        self.anchor: str | None = None
        self.text_hash = 0

    def text(self) -> str:
        assert self.read is not None
        return self.read(self.start, self.end)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "doc_id": self.doc_id,
            "start": self.start,
            "end": self.end,
            "turn": self.turn,
            "subcalls": list(self.subcalls),
        }


class SpanLog:
    """Span log of one REPL process (one execution).

    ``SpanLog(max_events=100_000, max_step_events=50_000, min_tag_chars=8)``. ``turn`` is set
    by :meth:`begin_step`. Thread-safe (model code may read from several threads).
    Events beyond ``max_step_events`` in one step are not logged; :attr:`dropped` counts them.
    """

    def __init__(self, *, max_events: int = 100_000, max_step_events: int = 50_000, min_tag_chars: int = 8) -> None:
        self.turn = 0
        self.dropped = 0
        self._max_events = max_events
        self._max_step = max_step_events
        self._min_tag = min_tag_chars
        self._lock = threading.RLock()
        self._reads: dict[tuple[Any, ...], _Event] = {}  # insertion-ordered, all turns
        self._dirty: dict[tuple[Any, ...], _Event] = {}  # changed during this step
        self._anchors: dict[str, list[_Event]] = {}
        self._by_text: dict[tuple[int, int], _Event] = {}
        self._step_new = 0

    def begin_step(self, turn: int) -> None:
        """Start a step of ``turn``: later events carry it; the step counters reset."""
        with self._lock:
            self.turn = turn
            self._step_new = 0
            self.dropped = 0

    def _room(self) -> bool:
        if self._step_new >= self._max_step:
            self.dropped += 1
            return False
        self._step_new += 1
        return True

    def read(self, doc_id: str, start: int, end: int, text: str, source: TextSource) -> None:
        """Log that ``text`` (= canonical text ``[start, end)`` of ``doc_id``) was returned to
        the code; ``source`` re-reads it later for sub-call tagging. Empty reads are ignored."""
        if end <= start:
            return
        with self._lock:
            key = ("read", doc_id, start, end, self.turn)
            if key in self._reads or not self._room():
                return
            ev = _Event("read", doc_id, start, end, self.turn, source)
            if len(text) >= self._min_tag and not text.isspace():
                ev.anchor = text[: self._min_tag]
                self._anchors.setdefault(ev.anchor, []).append(ev)
            ev.text_hash = hash(text)
            self._by_text[(len(text), ev.text_hash)] = ev
            self._reads[key] = ev
            self._dirty[key] = ev
            if len(self._reads) > self._max_events:
                self._forget(next(iter(self._reads)))

    def _forget(self, key: tuple[Any, ...]) -> None:
        ev = self._reads.pop(key)
        if ev.anchor is not None:
            bucket = self._anchors[ev.anchor]
            bucket.remove(ev)
            if not bucket:
                del self._anchors[ev.anchor]
        tk = (ev.end - ev.start, ev.text_hash)
        if self._by_text.get(tk) is ev:
            del self._by_text[tk]

    def scan(self, doc_id: str, start: int, end: int) -> None:
        """Log a match of ``find``/``grep``/``search`` at absolute ``[start, end)``."""
        with self._lock:
            key = ("scan", doc_id, start, end, self.turn)
            if key in self._dirty or not self._room():
                return
            self._dirty[key] = _Event("scan", doc_id, start, end, self.turn, None)

    def tag(self, prompt: str, subcall_id: str) -> int:
        """Append ``subcall_id`` to every kept read whose text occurs in ``prompt``.
        Returns the number of reads tagged. Cost: O(len(prompt)) dictionary look-ups plus
        one comparison per candidate, independent of the number of reads kept."""
        with self._lock:
            hits: list[_Event] = []
            m = self._min_tag
            if len(self._reads) <= _DIRECT_TAG_MAX:
                for ev in self._reads.values():
                    if (
                        ev.anchor is not None
                        and ev.end - ev.start <= len(prompt)
                        and ev.anchor in prompt
                        and ev.text() in prompt
                    ):
                        hits.append(ev)
            else:
                seen: set[int] = set()
                get = self._anchors.get
                for p in range(len(prompt) - m + 1):
                    bucket = get(prompt[p : p + m])
                    if not bucket:
                        continue
                    for ev in bucket:
                        if (
                            id(ev) not in seen
                            and ev.end - ev.start <= len(prompt) - p
                            and prompt.startswith(ev.text(), p)
                        ):
                            seen.add(id(ev))
                            hits.append(ev)
            for ev in hits:
                if subcall_id not in ev.subcalls:
                    ev.subcalls.append(subcall_id)
                    self._dirty[("read", ev.doc_id, ev.start, ev.end, ev.turn)] = ev
            return len(hits)

    def find_read(self, text: str) -> tuple[str, int, int] | None:
        """Return ``(doc_id, start, end)`` of the latest kept read whose text equals ``text``."""
        with self._lock:
            ev = self._by_text.get((len(text), hash(text)))
            if ev is None or ev.text() != text:
                return None
            return ev.doc_id, ev.start, ev.end

    def drain(self) -> list[dict[str, Any]]:
        """Return the events logged or tagged since the last drain, as dicts, and clear them."""
        with self._lock:
            out = [ev.as_dict() for ev in self._dirty.values()]
            self._dirty.clear()
            return out
