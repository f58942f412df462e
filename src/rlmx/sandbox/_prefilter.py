"""The byte-literal prefilter of ``grep`` (the fastest of its paths; docs:
:mod:`rlmx.sandbox.regex_engine`): :func:`required_literal` finds a literal every match has
at a fixed offset, and :func:`grep_prefiltered` looks for it in the raw (memory-mapped,
undecoded) UTF-8 bytes — memchr for its rarest byte, as ripgrep does — and runs the regex
only there. Offsets in and out are absolute code points; the block scan it falls back to is
:func:`rlmx.sandbox._scan.grep`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from ._scan import _GREP_PREFIX_CHARS, GREP_OVERLAP_CHARS, Reader, grep, match_at

__all__ = ["grep_prefiltered", "literal_prefix", "required_literal"]

_MAX_MISSES = 20_000  # candidates that did not match before falling back to block scanning


def literal_prefix(regex: re.Pattern[str]) -> str:
    """The literal text every match of ``regex`` starts with ('' when there is none, or when
    the pattern ignores case)."""
    found = required_literal(regex, min_chars=1)
    return found[0] if found is not None and found[1] == 0 else ""


def required_literal(regex: re.Pattern[str], min_chars: int = 3) -> tuple[str, int] | None:
    """``(literal, offset)``: every match of ``regex`` has ``literal`` (at least
    ``min_chars`` long) exactly ``offset`` characters after its start — the first run of
    literal characters of the top-level sequence preceded by fixed-width items only
    (``[Nn]eedle-\\d+`` → ``("eedle-", 1)``). None when there is none or the pattern ignores
    case."""
    if regex.flags & re.IGNORECASE:
        return None
    try:
        from re import _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(regex.pattern, regex.flags)
        literal = _parser.LITERAL
        items = list(parsed)
    except Exception:
        return None
    offset = 0
    i = 0
    while i < len(items):
        if items[i][0] is literal:
            j = i
            while j < len(items) and items[j][0] is literal:
                j += 1
            text = "".join(chr(arg) for _, arg in items[i:j])
            if len(text) >= min_chars:
                return text, offset
            offset += len(text)
            i = j
            continue
        try:
            lo, hi = _parser.SubPattern(parsed.state, [items[i]]).getwidth()
        except Exception:
            return None
        if lo != hi:
            return None
        offset += lo
        i += 1
    return None


# Bytes from most to least frequent in typical text and code: the needle's rarest byte is the
# one looked for with memchr (as ripgrep does); UTF-8 lead bytes and the rest count as rare.
_COMMON = b" etaoinsrhldcumfpgwybv\n.,kETAOINSRHLDCUMFPGWYBV0123456789_()=:;'\"-xjqzKXJQZ/\t"


def _rank(b: int) -> int:
    i = _COMMON.find(bytes([b]))
    return i if i >= 0 else len(_COMMON)


class _RareByteFinder:
    """``find(needle, start, end)`` over raw bytes: memchr for the needle's rarest byte, then
    a check of the whole needle; switches to plain substring search when that byte turns
    out to be common in this text."""

    def __init__(self, find: Callable[[bytes, int, int], int], needle: bytes, origin: int) -> None:
        self.find = find
        self.needle = needle
        self.k = max(range(len(needle)), key=lambda j: _rank(needle[j]))
        self.rare = needle[self.k : self.k + 1]
        self.rare_mode = len(needle) > 1
        self.origin = origin
        self.probes = 0

    def __call__(self, pos: int, end: int) -> int:
        n, k = len(self.needle), self.k
        while self.rare_mode:
            j = self.find(self.rare, pos + k, end)
            if j < 0:
                return -1
            cand = j - k
            if cand + n <= end and self.find(self.needle, cand, cand + n) == cand:
                return cand
            pos = cand + 1
            self.probes += 1
            if self.probes > 1024 and (j - self.origin) < 4096 * self.probes:
                self.rare_mode = False  # the "rare" byte is common here
        return self.find(self.needle, pos, end)


def grep_prefiltered(
    reader: Any,
    read: Reader,
    regex: re.Pattern[str],
    prefix: str,
    start: int,
    end: int,
    max_hits: int,
    *,
    offset: int = 0,
    overlap: int = GREP_OVERLAP_CHARS,
) -> Iterator[tuple[int, int]]:
    """Like :func:`grep`, for a regex whose matches all have ``prefix`` ``offset``
    characters after their start (:func:`required_literal`): find it in the raw
    (memory-mapped, undecoded) bytes — as ripgrep does — and run the regex only there, on a
    small decoded window of ``overlap`` characters, re-read larger while a match ends near
    its end (as in :func:`grep`). Falls back to :func:`grep` for the rest of the
    range when the prefix turns out to be common. ``reader``: the document's
    :class:`~rlmx.corpus.canonical.TextReader`."""
    if max_hits <= 0:
        return
    needle = prefix.encode("utf-8")
    b_end = reader.byte_offset(end)
    pos = reader.byte_offset(start)
    finder = _RareByteFinder(reader.find_bytes, needle, pos)
    last_end = start
    found = misses = 0
    while True:
        i = finder(pos, b_end)
        if i < 0:
            return
        c = reader.char_offset(i) - offset
        if c < last_end:
            pos = i + 1
            continue
        hit = match_at(read, regex, c, max(start, c - _GREP_PREFIX_CHARS), min(end, c + overlap), end)
        if hit is not None:
            yield hit
            found += 1
            if found >= max_hits:
                return
            last_end = hit[1]
            pos = reader.byte_offset(min(end, last_end + offset))
            continue
        misses += 1
        pos = i + 1
        if misses > _MAX_MISSES:  # a common prefix: scanning block by block is faster
            yield from grep(read, regex, max(c + 1, last_end), end, max_hits - found)
            return
