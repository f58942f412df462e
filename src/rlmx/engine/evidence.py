"""Evidence helpers for citations: find an answer (or one item of it) in canonical text, and
widen a span to whole words and to its enclosing sentence, table row or code line.

All offsets are code points of a document's canonical text (end exclusive). Matching is
case-insensitive and whitespace-insensitive and always on word boundaries, so that ``"1"``
never matches inside ``"1961"`` and ``"plan"`` never inside ``"planet"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

__all__ = ["LONG_SPAN", "MAX_WIDEN", "answer_items", "find_all", "widen"]

MAX_WIDEN = 400
"""Widening moves each edge of a span by at most this many characters."""
LONG_SPAN = 400
"""A span at least this long (characters) is widened to whole words only, not to sentences."""

_WORD = re.compile(r"\w", re.UNICODE)
_STRIP = " \t\r\n\"“”'‘’`.,;:!?()[]{}…*•>-–—"
_BULLET = re.compile(r"^\s*(?:[-*•>]+|\d{1,3}[.)]|[a-z][.)])\s+", re.IGNORECASE)
_STRUCTURED = re.compile(r"[|\t]|^\s|^[-*•#>]|^\d{1,3}[.)]\s|[:;{}()\[\],=]\s*$")
_ABBREV = frozenset({"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "no", "gen", "gov", "sen", "rep"})
_PROSE_LINE = 40  # a single newline after a prose line at least this long is a soft wrap


def _clean(s: str) -> str:
    return _BULLET.sub("", s.strip()).strip(_STRIP)


def answer_items(answer: str) -> list[list[str]]:
    """Candidate evidence of an answer, coarse to fine: a list of groups, each group the
    finer pieces to try when its parent does not occur. Shape: ``[[whole], [line, ...],
    [clause, ...], [item, ...]]`` where lines split on newlines, clauses on sentence ends
    and ``:``/``;``/dashes, items on commas and the words "and"/"or". Pieces are stripped of
    quotes, bullets and edge punctuation; pieces without a letter or digit are dropped."""
    whole = _clean(answer)
    lines = [_clean(x) for x in answer.splitlines()]
    clauses: list[str] = []
    items: list[str] = []
    quoted = re.findall(r"[\"“]([^\"”]+)[\"”]", answer)
    for line in [*lines, *quoted]:
        for cl in re.split(r"(?<=[.!?;:])\s+|\s+[—–]\s+|\s-\s", line):
            clauses.append(_clean(cl))
            for it in re.split(r",\s*|;\s*|\s+(?:and|or|&)\s+", cl):
                items.append(_clean(it))
    out: list[list[str]] = []
    seen: set[str] = set()
    for group in ([whole], lines, [_clean(q) for q in quoted] + clauses, items):
        keep = []
        for piece in group:
            key = " ".join(piece.lower().split())
            if key and key not in seen and _WORD.search(piece):
                seen.add(key)
                keep.append(piece)
        out.append(keep)
    return out


def _pattern(needle: str) -> re.Pattern[str] | None:
    words = needle.split()
    if not words:
        return None
    body = r"\s+".join(re.escape(w) for w in words)
    left = r"(?<!\w)" if _WORD.match(needle[0]) else ""
    right = r"(?!\w)" if _WORD.match(needle[-1]) else ""
    return re.compile(left + body + right, re.IGNORECASE)


def find_all(needle: str, text: str, limit: int = 50) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of up to ``limit`` occurrences of ``needle`` in ``text``, matched
    case- and whitespace-insensitively on word boundaries (offsets into ``text``)."""
    pat = _pattern(needle)
    if pat is None:
        return
    for n, m in enumerate(pat.finditer(text)):
        if n >= limit:
            return
        yield m.start(), m.end()


def _is_sentence_end(text: str, i: int) -> bool:
    """Whether a sentence ends just before ``text[i]`` (``i`` is whitespace)."""
    if i <= 0 or i >= len(text) or text[i - 1] not in ".!?":
        return False
    j = i - 1
    while j > 0 and text[j - 1].isalpha():
        j -= 1
    word = text[j : i - 1]
    return not ((len(word) == 1 and word.isupper()) or word.lower() in _ABBREV)  # "Harry S. Truman"


def _hard_newline(text: str, i: int) -> bool:
    """Whether the newline at ``text[i]`` ends a unit: a blank line, a table row, a code or
    list line, or a short line; a long prose line followed by a newline is a soft wrap."""
    if text[i + 1 : i + 2] == "\n" or text[i - 1 : i] == "\n":
        return True
    start = text.rfind("\n", 0, i) + 1
    nxt = text.find("\n", i + 1)
    before, after = text[start:i], text[i + 1 : nxt if nxt >= 0 else len(text)]
    if _STRUCTURED.search(before) or _STRUCTURED.search(after) or not after.strip():
        return True
    return len(before) < _PROSE_LINE or before.rstrip()[-1:] in ".!?:"


def _unit_start(text: str, i: int, floor: int) -> int:
    """Start of the sentence/line holding ``text[i]``, not before ``floor``."""
    j = i
    while j > floor:
        c = text[j - 1]
        if c == "\n" and _hard_newline(text, j - 1):
            break
        if c.isspace() and _is_sentence_end(text, j - 1):
            break
        j -= 1
    while j < i and text[j].isspace():
        j += 1
    return j


def _unit_end(text: str, i: int, ceil: int) -> int:
    """End (exclusive) of the sentence/line holding ``text[i - 1]``, not after ``ceil``."""
    j = i
    while j < ceil:
        c = text[j]
        if c == "\n" and _hard_newline(text, j):
            break
        if c.isspace() and _is_sentence_end(text, j):
            break
        j += 1
    while j > i and text[j - 1].isspace():
        j -= 1
    return j


def _word_start(text: str, i: int, floor: int) -> int:
    while i > floor and text[i - 1].isalnum() and text[i].isalnum():
        i -= 1
    return i


def _word_end(text: str, i: int, ceil: int) -> int:
    while i < ceil and text[i - 1].isalnum() and text[i].isalnum():
        i += 1
    return i


def widen(
    start: int, end: int, read: Callable[[int, int], str], lo: int, hi: int, *, sentence: bool = True
) -> tuple[int, int]:
    """Widen ``[start, end)`` within ``[lo, hi)`` (the document or window bounds): always
    to whole words; when ``sentence`` and the span is shorter than :data:`LONG_SPAN`, to the
    enclosing sentence, table row or code line. Each edge moves at most :data:`MAX_WIDEN`
    characters; where the unit is longer, the edge stops on a word boundary. ``read(a, b)``
    returns the canonical text ``[a, b)``. Leading/trailing whitespace is trimmed."""
    a, b = max(lo, start - MAX_WIDEN - 1), min(hi, end + MAX_WIDEN + 1)
    text = read(a, b)
    if a + len(text) < b:  # the document ends here
        b = hi = a + len(text)
    s, e = max(start, a) - a, min(end, b) - a
    if e <= s:
        return start, end
    floor, ceil = (1 if a > lo else 0), len(text) - (1 if b < hi else 0)
    ws, we = _word_start(text, s, floor), _word_end(text, e, ceil)
    if sentence and end - start < LONG_SPAN:
        ws, we = _unit_start(text, ws, floor), _unit_end(text, we, ceil)
        if ws == floor == 1:  # the unit starts farther away: stop on a word boundary
            while ws < s and text[ws - 1].isalnum() and text[ws].isalnum():
                ws += 1
        if we == ceil < len(text):
            while we > e and text[we - 1].isalnum() and text[we].isalnum():
                we -= 1
    while ws < we and text[ws].isspace():
        ws += 1
    while we > ws and text[we - 1].isspace():
        we -= 1
    if we <= ws:
        return start, end
    return a + ws, a + we
