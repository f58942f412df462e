"""Block-wise scans over a stored canonical text: find, rfind, count, grep, keyword scoring
(the byte-literal prefilter of grep is :mod:`rlmx.sandbox._prefilter`).

Runs inside the REPL process. Every function takes ``read(start, end) -> str`` (absolute
code-point offsets, end exclusive) and a range ``[start, end)``, and reads at most one block
of ``BLOCK_CHARS`` characters (plus a small overlap) at a time, so that memory stays
independent of the document's size. Offsets in and out are absolute code points.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator

from rlmx.corpus.index import chunk_spans, fts_query

__all__ = [
    "BLOCK_CHARS",
    "GREP_MAX_MATCH_CHARS",
    "GREP_OVERLAP_CHARS",
    "Reader",
    "compile_pattern",
    "count",
    "find",
    "grep",
    "iter_blocks",
    "keyword_scores",
    "match_at",
    "rfind",
]

BLOCK_CHARS = 1 << 20
"""Characters read per block (≈ 1–4 MB of UTF-8)."""

GREP_OVERLAP_CHARS = 4096
"""A regex match starting in one block may extend this many characters into the next (the
text a match is first looked for in; see :data:`GREP_MAX_MATCH_CHARS`)."""

GREP_MAX_MATCH_CHARS = 1 << 22
"""A match that ends near the end of the text it was found in is looked for again in more
text (doubling, up to this many characters from its start), so that ``$``, ``\\Z``, ``\\b``,
lookaheads and greedy repeats never stop at an artificial cut."""

_GREP_PREFIX_CHARS = 64  # context before a block so that ``^``, ``\\b`` and lookbehinds see it
_GREP_SUFFIX_CHARS = 64  # a match ending this close to a cut is re-checked with more text

Reader = Callable[[int, int], str]


def iter_blocks(
    read: Reader,
    start: int,
    end: int,
    *,
    block: int = BLOCK_CHARS,
    overlap: int = 0,
    prefix: int = 0,
) -> Iterator[tuple[int, str, int, int]]:
    """Yield ``(text_start, text, lo, hi)`` covering ``[start, end)``.

    ``text`` is canonical text from absolute offset ``text_start``; matches that *start* in
    ``text[lo:hi]`` belong to this block (the ``hi`` of one block is the ``lo`` of the next,
    in absolute terms). ``hi`` is cut after a newline in the second half of the block when
    there is one. ``text`` extends ``overlap`` characters past ``hi`` (for matches that cross
    the cut) and starts up to ``prefix`` characters before ``lo`` (never before ``start``).
    """
    pos = start
    while pos < end:
        pre = min(prefix, pos - start)
        stop = min(end, pos + block)
        text = read(pos - pre, min(end, stop + overlap))
        if stop < end:
            cut = text.rfind("\n", pre + block // 2, pre + block)
            hi = cut + 1 if cut >= 0 else pre + block
        else:
            hi = len(text)
        yield pos - pre, text, pre, hi
        pos = pos - pre + hi


def compile_pattern(pattern: str | re.Pattern[str], flags: int) -> re.Pattern[str]:
    """Compile a grep pattern (str, or an already compiled str pattern without flags)."""
    if isinstance(pattern, re.Pattern):
        if flags:
            raise ValueError("cannot pass flags with a compiled pattern")
        if not isinstance(pattern.pattern, str):
            raise TypeError("grep needs a str pattern, not bytes")
        return pattern
    if not isinstance(pattern, str):
        raise TypeError(f"grep pattern must be a str, got {type(pattern).__name__}")
    return re.compile(pattern, flags)


def find(read: Reader, sub: str, start: int, end: int, *, block: int = BLOCK_CHARS) -> int:
    """Return the lowest absolute offset of ``sub`` within ``[start, end)``, or -1."""
    if not sub:
        return start if start <= end else -1
    ov = len(sub) - 1
    for base, text, lo, hi in iter_blocks(read, start, end, block=block, overlap=ov):
        i = text.find(sub, lo, hi + ov)
        if i >= 0:
            return base + i
    return -1


def rfind(read: Reader, sub: str, start: int, end: int, *, block: int = BLOCK_CHARS) -> int:
    """Return the highest absolute offset of ``sub`` within ``[start, end)``, or -1."""
    if not sub:
        return end if start <= end else -1
    ov = len(sub) - 1
    stop = end
    while stop > start:
        s = max(start, stop - block)
        text = read(s, min(end, stop + ov))
        i = text.rfind(sub, 0, stop - s + ov)
        if i >= 0:
            return s + i
        stop = s
    return -1


def count(read: Reader, sub: str, start: int, end: int, *, block: int = BLOCK_CHARS) -> int:
    """Return the number of non-overlapping occurrences of ``sub`` in ``[start, end)``."""
    if not sub:
        return end - start + 1 if end >= start else 0
    ov = len(sub) - 1
    n = 0
    next_ok = start  # absolute: the previous match ends here
    for base, text, lo, hi in iter_blocks(read, start, end, block=block, overlap=ov):
        i = text.find(sub, max(lo, next_ok - base), hi + ov)
        while i >= 0:
            n += 1
            next_ok = base + i + len(sub)
            i = text.find(sub, i + len(sub), hi + ov)
    return n


def _near_cut(text_end: int, e: int, end: int) -> bool:
    """Whether a match ending at absolute ``e`` may owe its end to the text stopping at
    absolute ``text_end`` (before the range's true ``end``): ``$``/``\\Z``/``\\b`` or a
    lookahead at the cut, or a greedy repeat cut short."""
    return text_end < end and e > text_end - _GREP_SUFFIX_CHARS


def _grow(text_end: int, s: int, end: int) -> int:
    """The new absolute end of a text re-read to settle a match starting at absolute ``s``
    (:func:`_near_cut`): twice the part after ``s`` (at least ``GREP_OVERLAP_CHARS`` more),
    at most ``GREP_MAX_MATCH_CHARS`` after ``s`` and never past ``end``; ``text_end`` when it
    cannot grow."""
    want = text_end + max(text_end - s, GREP_OVERLAP_CHARS)
    return max(text_end, min(end, want, s + GREP_MAX_MATCH_CHARS))


def match_at(read: Reader, regex: re.Pattern[str], c: int, w0: int, w1: int, end: int) -> tuple[int, int] | None:
    """The non-empty match of ``regex`` starting exactly at absolute character ``c``, read
    from the window ``[w0, w1)`` (``w0`` before ``c`` for lookbehind and ``\\b``) and re-read
    longer while the match may owe its end to the window's cut (:func:`_near_cut`); its
    absolute ``(start, end)`` in characters, else None."""
    text = read(w0, w1)
    m = regex.match(text, c - w0)
    while m is not None and _near_cut(w1, w0 + m.end(), end):
        grown = _grow(w1, c, end)
        if grown == w1:
            break
        w1 = grown
        text = read(w0, w1)
        m = regex.match(text, c - w0)
    if m is None or m.end() <= m.start():
        return None
    return w0 + m.start(), w0 + m.end()


def grep(
    read: Reader,
    regex: re.Pattern[str],
    start: int,
    end: int,
    max_hits: int,
    *,
    block: int = BLOCK_CHARS,
    overlap: int = GREP_OVERLAP_CHARS,
) -> Iterator[tuple[int, int]]:
    """Yield absolute ``(start, end)`` spans of ``regex`` matches in ``[start, end)``, in order,
    at most ``max_hits``.

    Matches are found block by block (see :func:`iter_blocks`): a match is looked for in
    its block plus ``overlap`` characters, and one that ends within a few characters of
    that text's end (before ``end``) is looked for again in more text (up to
    ``GREP_MAX_MATCH_CHARS`` from its start), so ``$``, ``\\Z`` and ``\\b`` match only where
    :func:`re.finditer` over the whole range would. A match that needs more than ``overlap``
    characters past its block's cut to match at all is not found; lookbehinds see 64
    characters before a block. ``^``/``\\A`` without ``re.MULTILINE`` only match at ``start``.
    Zero-length matches are skipped.
    """
    if max_hits <= 0:
        return
    found = 0
    last_end = start
    for base, text, lo, hi in iter_blocks(read, start, end, block=block, overlap=overlap, prefix=_GREP_PREFIX_CHARS):
        last_block = base + hi >= end
        pos = max(lo, last_end - base)  # where the current finditer started, or the last match ended
        while True:
            regrown = False
            for m in regex.finditer(text, pos):
                s, e = m.span()
                if s >= hi and not last_block:
                    break
                text_end = base + len(text)
                if _near_cut(text_end, base + e, end):
                    new_end = _grow(text_end, base + s, end)
                    if new_end > text_end:  # look again from ``pos`` in more text
                        text = read(base, new_end)
                        regrown = True
                        break
                if e == s:
                    continue
                yield base + s, base + e
                last_end = base + e
                pos = e
                found += 1
                if found >= max_hits:
                    return
            if not regrown:
                break


def _terms(query: str) -> list[tuple[str, ...]]:
    """Query terms as word tuples (a phrase is several words), as :func:`fts_query` picks them."""
    return [tuple(t.split()) for t in re.findall(r'"([^"]+)"', fts_query(query))]


def keyword_scores(
    reader_of: Callable[[str], Reader], query: str, ranges: list[tuple[str, int, int]], k: int
) -> list[tuple[float, str, int, int]]:
    """BM25 over ~1,000-character chunks of ``ranges`` (``(doc_id, start, end)``, absolute),
    computed by scanning (no index, no stemming; words lower-cased). Returns up to ``k``
    ``(score, doc_id, start, end)``, best first. Memory grows with the matching chunks only.

    ``reader_of(doc_id)`` returns the :data:`Reader` of that document.
    """
    terms = _terms(query)
    if not terms or k <= 0:
        return []
    n_chunks = 0
    total_len = 0
    matches: list[tuple[str, int, int, int, list[int]]] = []
    df = [0] * len(terms)
    for doc_id, start, end in ranges:
        reader = reader_of(doc_id)
        for base, text, lo, hi in iter_blocks(reader, start, end):
            part = text[lo:hi]
            for cs, ce in chunk_spans(part):
                words = re.findall(r"\w+", part[cs:ce].lower())
                n_chunks += 1
                total_len += len(words)
                joined = " " + " ".join(words) + " "
                tfs = [joined.count(" " + " ".join(t) + " ") for t in terms]
                if any(tfs):
                    for i, tf in enumerate(tfs):
                        df[i] += tf > 0
                    matches.append((doc_id, base + lo + cs, base + lo + ce, len(words), tfs))
    if not matches:
        return []
    avg = total_len / max(1, n_chunks)
    idf = [math.log(1 + (n_chunks - d + 0.5) / (d + 0.5)) for d in df]
    k1, b = 1.2, 0.75
    scored = []
    for doc_id, s, e, dl, tfs in matches:
        score = sum(idf[i] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avg)) for i, tf in enumerate(tfs) if tf)
        scored.append((score, doc_id, s, e))
    scored.sort(key=lambda r: -r[0])
    return scored[:k]
