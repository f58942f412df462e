"""The regex engine behind ``context.grep`` for patterns without a case-sensitive literal:
RE2 (``google-re2``, a DFA) finds candidates in the raw UTF-8 bytes, Python ``re`` decides.

Runs inside the REPL process. Python's ``re`` scans decoded text one character at a time
(19–53× ripgrep over 1 GB for ``(?i)needle-\\d{6}``); RE2 runs a DFA over the memory-mapped
file without decoding it. The hits stay exactly those of Python ``re`` — same spans, same
order, offsets in code points — because RE2 only proposes where a match may start:

1. :func:`rlmx.sandbox.regex_translate.candidate_pattern` translates the parsed Python
   pattern into an RE2 pattern that matches at every position where the Python one does
   (a *superset*; see that module for how, and for the patterns it cannot translate).
2. :func:`grep_candidates` asks RE2 for the leftmost candidate from a byte position, converts
   its byte offset to a code point (:meth:`~rlmx.corpus.canonical.TextReader.char_offset`),
   and runs the Python regex there (``regex.match`` on a small decoded window that holds at
   least RE2's own match, re-read larger while a match ends near its edge, as
   :func:`rlmx.sandbox._prefilter.grep_prefiltered` does). A match is a hit, and the search
   resumes at its end; a refusal moves on to the next character. Since
   every Python match is a candidate, the first accepted candidate is Python's leftmost match.

Which pattern takes which path (see ``context.grep``: :func:`rlmx.sandbox.docview.grep_views`):

* a case-sensitive literal of 3+ characters at a fixed offset in every match → the byte
  prefilter (:func:`rlmx.sandbox._prefilter.grep_prefiltered`);
* otherwise, RE2 candidates (this module) — looked for only around a case-invariant ASCII
  byte when every match has one a fixed number of characters after its start (the ``-``
  of ``(?i)needle-\\d{6}``: :class:`Candidates`), or after a part of variable width made of
  characters of a known set (the ``-`` of ``[a-z]+-\\d{6}``: ``Candidates.inner``, a backward
  scan over that set's bytes), else by RE2 over the whole range — when
  the translation exists and RE2 accepts it (not too large);
* otherwise, and after ``MAX_MISSES`` refused candidates, Python ``re`` block by block
  (:func:`rlmx.sandbox._scan.grep`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import Any

from ._scan import (
    _GREP_PREFIX_CHARS,
    _GREP_SUFFIX_CHARS,
    GREP_MAX_MATCH_CHARS,
    GREP_OVERLAP_CHARS,
    Reader,
    grep,
    match_at,
)
from .regex_translate import Untranslatable, candidate_pattern, fold, translate_items

__all__ = ["MAX_MISSES", "Candidates", "compile_candidates", "grep_candidates", "re2_available"]

MAX_MISSES = 20_000
"""Refused RE2 candidates before the rest of the range is scanned by Python ``re`` alone."""

_RE2_MAX_MEM = 64 << 20  # bytes for RE2's compiled program and DFA cache


@functools.cache
def re2_available() -> bool:
    """Whether the ``re2`` extension (``google-re2``) imports in this process."""
    try:
        import re2  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=64)
def _compile_re2(pattern: str) -> Any:
    import re2

    opts = re2.Options()
    opts.max_mem = _RE2_MAX_MEM
    opts.log_errors = False
    try:
        return re2.compile(pattern.encode("utf-8"), opts)._regexp
    except re2.error:
        return None


class Candidates:
    """A compiled candidate finder: ``full`` (the RE2 translation) and, when every match has
    a case-invariant ASCII byte (``-``, ``_``, a digit...) a fixed number of characters after
    its start (``(?i)needle-\\d{6}``), ``anchor = (byte, min_bytes, max_bytes, prefix,
    prefix_max_bytes)``: look for that byte with ``mmap.find`` (memchr) and ask RE2 only
    around it (``prefix``: the translation up to that byte), as ripgrep does.

    ``inner = (byte, run_bytes, min_bytes, prefix)``: when that byte follows a part of
    variable width instead (``[a-z]+-\\d{6}``), every character before it in a match is one
    of a known set; ``run_bytes`` holds the UTF-8 bytes such characters may have (all of
    0x80-0xFF when the set has a non-ASCII character). A match through a byte found at ``q``
    starts inside the run of such bytes that ends at ``q``: RE2 (``prefix``) looks only there.
    This is ripgrep's inner-literal search, with a backward scan over a byte set in place of
    its reverse regex."""

    def __init__(
        self,
        full: Any,
        anchor: tuple[bytes, int, int, Any, int] | None,
        inner: tuple[bytes, bytes, int, Any] | None = None,
    ) -> None:
        self.full = full
        self.anchor = anchor
        self.inner = inner


def _anchor(regex: re.Pattern[str]) -> tuple[bytes, int, int, Any, int] | None:
    try:
        from re import _constants as c  # type: ignore[attr-defined]
        from re import _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(regex.pattern, regex.flags)
        flags = parsed.state.flags
        items = list(parsed)
        width = 0
        for k, (op, av) in enumerate(items):
            if op is c.LITERAL and av < 128 and fold({av}, bool(flags & re.ASCII)) == {av} and width > 0:
                prefix = _compile_re2(translate_items(items[: k + 1], flags, c))
                return None if prefix is None else (bytes([av]), width, 4 * width, prefix, 4 * (width + 1))
            lo, hi = _parser.SubPattern(parsed.state, [(op, av)]).getwidth()
            if lo != hi or op is c.AT:
                return None
            width += lo
    except (Untranslatable, re.error, RecursionError, AttributeError, TypeError):
        return None
    return None


def _atoms(items: Any, c: Any, out: list[Any]) -> bool:
    """Collect the one-character items of ``items`` (through repeats, plain groups and
    branches) into ``out``; False when a part is anything else (lookarounds, backreferences,
    groups that change flags)."""
    for op, av in items:
        if op in (c.LITERAL, c.NOT_LITERAL, c.IN, c.ANY):
            out.append((op, av))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            if not _atoms(av[2], c, out):
                return False
        elif op is c.SUBPATTERN:
            if av[1] or av[2] or not _atoms(av[3], c, out):  # (group, add_flags, del_flags, p)
                return False
        elif op is c.ATOMIC_GROUP:
            if not _atoms(av, c, out):
                return False
        elif op is c.BRANCH:
            if not all(_atoms(branch, c, out) for branch in av[1]):
                return False
        elif op is not c.AT:  # \b and the like consume nothing
            return False
    return True


def _ascii_atom(op: Any, av: Any, flags: int, c: Any) -> bool:
    """Whether the one-character item matches ASCII characters only."""
    chars: set[int] = set()
    if op is c.LITERAL:
        chars = {av}
    elif op is c.IN:
        for o, a in av:
            if o is c.LITERAL:
                chars.add(a)
            elif o is c.RANGE and a[1] < 128:
                chars.update(range(a[0], a[1] + 1))
            else:  # NEGATE, CATEGORY, a range past ASCII
                return False
    else:  # ANY, NOT_LITERAL
        return False
    if flags & re.IGNORECASE:
        chars = fold(chars, bool(flags & re.ASCII))
    return max(chars, default=0) < 128


def _inner_anchor(regex: re.Pattern[str]) -> tuple[bytes, bytes, int, Any] | None:
    try:
        from re import _compiler, _parser  # type: ignore[attr-defined]
        from re import _constants as c  # type: ignore[attr-defined]

        parsed = _parser.parse(regex.pattern, regex.flags)
        flags = parsed.state.flags
        items = list(parsed)
        for k, (op, av) in enumerate(items):
            if k == 0 or op is not c.LITERAL or av >= 128 or fold({av}, bool(flags & re.ASCII)) != {av}:
                continue
            atoms: list[Any] = []
            if not _atoms(items[:k], c, atoms) or not atoms:
                return None
            run = bytearray()
            for atom in atoms:
                one = _compiler.compile(_parser.SubPattern(parsed.state, [atom]), flags)
                run.extend(b for b in range(128) if b not in run and one.fullmatch(chr(b)))
            if not all(_ascii_atom(op_, av_, flags, c) for op_, av_ in atoms):
                run.extend(range(128, 256))
            min_chars = _parser.SubPattern(parsed.state, items[:k]).getwidth()[0]
            prefix = _compile_re2(translate_items(items[: k + 1], flags, c))
            return None if prefix is None else (bytes([av]), bytes(run), min_chars, prefix)
    except (Untranslatable, re.error, RecursionError, AttributeError, TypeError):
        return None
    return None


def compile_candidates(regex: re.Pattern[str]) -> Candidates | None:
    """The compiled RE2 candidate finder for ``regex``, or None (no ``re2``, no
    translation, or RE2 refused the translation)."""
    if not re2_available():
        return None
    pattern = candidate_pattern(regex)
    full = None if pattern is None else _compile_re2(pattern)
    if full is None:
        return None
    anchor = _anchor(regex)
    return Candidates(full, anchor, None if anchor is not None else _inner_anchor(regex))


def _run_start(view: memoryview, q: int, floor: int, run: bytes) -> int:
    """The start of the run of bytes in ``run`` that ends at ``q`` (not before ``floor``)."""
    hi, step = q, 64
    while hi > floor:
        lo = max(floor, hi - step)
        kept = len(bytes(view[lo:hi]).rstrip(run))
        if kept:
            return lo + kept
        hi, step = lo, min(step * 4, 1 << 16)
    return floor


def _next_char(view: memoryview, i: int, end: int) -> int:
    """The byte offset of the character after the one at (or containing) byte ``i``."""
    i += 1
    while i < end and view[i] & 0xC0 == 0x80:
        i += 1
    return i


def grep_candidates(
    reader: Any,
    read: Reader,
    regex: re.Pattern[str],
    finder: Candidates,
    start: int,
    end: int,
    max_hits: int,
    *,
    overlap: int = GREP_OVERLAP_CHARS,
) -> Iterator[tuple[int, int]]:
    """The matches of ``regex`` in code points ``[start, end)`` of a stored text, as
    :func:`rlmx.sandbox._scan.grep` yields them (absolute ``(start, end)``, non-empty, at
    most ``max_hits``), with candidates from ``finder`` (:func:`compile_candidates`) run
    over ``reader``'s memory-mapped bytes. ``reader``: the document's
    :class:`~rlmx.corpus.canonical.TextReader`; ``read``: its ``read(start, end) -> str``."""
    if max_hits <= 0:
        return
    import re2

    mm = reader._mm
    if mm is None:
        return
    unanchored, anchored = re2._re2.RE2.Anchor.UNANCHORED, re2._re2.RE2.Anchor.ANCHOR_START
    b_start = reader.byte_offset(start)
    # RE2 sees the range as the whole text: ``(?m)^`` at its start, ``$`` at its end, as
    # Python's ``finditer`` over the range's text does
    view = memoryview(mm)[b_start : reader.byte_offset(end)]
    b_end = len(view)
    pos = qpos = probes = 0
    found = misses = 0
    last_end = start
    # the byte every match holds, the least bytes before it, RE2 up to it, and where a match
    # through the byte at q may start: [lo, last_start], RE2 asked over [lo, hi)
    byte_search: tuple[bytes, int, Any, Callable[[int], tuple[int, int, int]]] | None = None
    if finder.inner is not None:
        byte, run, min_b, prefix = finder.inner
        byte_search = (byte, min_b, prefix, lambda q: (_run_start(view, q, pos, run), q + 1, q))
    elif finder.anchor is not None:
        byte, min_b, max_b, prefix, prefix_b = finder.anchor
        byte_search = (
            byte,
            min_b,
            prefix,
            lambda q: (max(pos, q - max_b), min(b_end, q - min_b + prefix_b), q - min_b),
        )

    def next_candidate() -> tuple[int, int]:
        """The leftmost RE2 match at or after ``pos``: around the anchor byte while it is
        rare enough, else by RE2 over the rest."""
        nonlocal qpos, probes, byte_search
        while byte_search is not None:
            byte, min_b, prefix, window = byte_search
            q = mm.find(byte, b_start + max(qpos, pos + min_b), b_start + b_end) - b_start
            if q < 0:
                return -1, -1
            lo, hi, last_start = window(q)
            if lo <= last_start:
                i = prefix.Match(unanchored, view, lo, hi)[0][0]
                if 0 <= i <= last_start:
                    qpos = q
                    return i, finder.full.Match(anchored, view, i, b_end)[0][1]
            qpos = q + 1
            probes += 1
            if probes > 1024 and q < 4096 * probes:  # the byte is common here
                byte_search = None
        return finder.full.Match(unanchored, view, pos, b_end)[0]

    while pos <= b_end:
        i, j = next_candidate()
        if i >= 0 and j < 0:  # the prefix matched, the whole translation does not: no match
            misses += 1
            pos = _next_char(view, i, b_end)
            continue
        if i < 0 or i >= b_end:  # none, or only an empty one at the very end
            return
        if view[i] & 0xC0 == 0x80:  # RE2 may start inside a character: no Python match there
            pos = _next_char(view, i, b_end)
            continue
        c = reader.char_offset(b_start + i)
        w0 = max(start, c - _GREP_PREFIX_CHARS)
        w1 = c + overlap
        whole = w1  # a window that holds all of RE2's match
        if j - i > overlap - _GREP_SUFFIX_CHARS:
            whole = min(end, reader.char_offset(b_start + j) + _GREP_SUFFIX_CHARS, c + GREP_MAX_MATCH_CHARS)
            # first within reason: a class widened to "any character" makes RE2's match run on
            w1 = max(w1, min(whole, c + 8 * overlap))
        w1 = min(end, w1, c + GREP_MAX_MATCH_CHARS)
        hit = match_at(read, regex, c, w0, w1, end)
        if hit is None and min(whole, end) > w1:  # a long match (a 40,000-letter word) needs all of it
            hit = match_at(read, regex, c, w0, whole, end)
        if hit is not None:
            yield hit
            found += 1
            if found >= max_hits:
                return
            last_end = hit[1]
            pos = reader.byte_offset(last_end) - b_start
            continue
        misses += 1
        pos = _next_char(view, i, b_end)
        if misses > MAX_MISSES:  # a loose translation: Python alone is faster
            yield from grep(read, regex, max(c + 1, last_end), end, max_hits - found)
            return
