"""The regex engine behind ``context.grep`` for patterns without a case-sensitive literal:
RE2 (``google-re2``, a DFA) finds candidates in the raw UTF-8 bytes, Python ``re`` decides.

Runs inside the REPL process. Python's ``re`` scans decoded text one character at a time
(19–53× ripgrep over 1 GB for ``(?i)needle-\\d{6}``); RE2 runs a DFA over the memory-mapped
file without decoding it. The hits stay exactly those of Python ``re`` — same spans, same
order, offsets in code points — because RE2 only proposes where a match may start:

1. :func:`candidate_pattern` translates the parsed Python pattern into an RE2 pattern that
   matches at every position where the Python one does (a *superset*): case-insensitive
   characters become the explicit classes of what Python's ``re.IGNORECASE`` accepts
   (``_sre.unicode_tolower`` and ``re._casefix``), ``\\d``/``\\w``/``\\s`` become Unicode
   classes that contain Python's, and what RE2 lacks or treats differently is widened:
   lookbehinds and ``\\b``/``\\B`` are dropped, possessive and atomic groups become plain
   ones, repeat counts over 100 are capped at 100 (at least) or unbounded (at most).
2. :func:`grep_candidates` asks RE2 for the leftmost candidate from a byte position, converts
   its byte offset to a code point (:meth:`~rlmx.corpus.canonical.TextReader.char_offset`),
   and runs the Python regex there (``regex.match`` on a small decoded window that holds at
   least RE2's own match, re-read larger while a match ends near its edge, as
   :func:`rlmx.sandbox._scan.grep_prefiltered` does; the translation keeps repeats greedy, so
   RE2's match ends no sooner than a lazy Python one). A
   match is a hit, and the search resumes at its end; a refusal moves one byte on. Since
   every Python match is a candidate, the first accepted candidate is Python's leftmost match.

Which pattern takes which path (see ``context.grep`` in :mod:`rlmx.sandbox.context`):

* a case-sensitive literal of 3+ characters at a fixed offset in every match → the byte
  prefilter (:func:`rlmx.sandbox._scan.grep_prefiltered`);
* otherwise, RE2 candidates (this module) — looked for only around a case-invariant ASCII
  byte when every match has one a fixed number of characters after its start (the ``-``
  of ``(?i)needle-\\d{6}``: :class:`Candidates`), else by RE2 over the whole range — when
  the translation exists: everything but a
  pattern that can match the empty string, ``^``/``$`` without ``re.MULTILINE``, ``\\A``,
  ``\\Z``, a lookahead, a backreference, a conditional group ``(?(1)...)``, a pattern RE2
  refuses (too large), or a document without a memory-mapped text;
* otherwise, and after ``MAX_MISSES`` refused candidates, Python ``re`` block by block
  (:func:`rlmx.sandbox._scan.grep`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

from ._scan import (
    _GREP_PREFIX_CHARS,
    _GREP_SUFFIX_CHARS,
    GREP_MAX_MATCH_CHARS,
    GREP_OVERLAP_CHARS,
    Reader,
    _grow,
    _near_cut,
    grep,
)

__all__ = ["MAX_MISSES", "Candidates", "candidate_pattern", "compile_candidates", "grep_candidates", "re2_available"]

MAX_MISSES = 20_000
"""Refused RE2 candidates before the rest of the range is scanned by Python ``re`` alone."""

_RE2_MAX_MEM = 64 << 20  # bytes for RE2's compiled program and DFA cache
_MAX_COUNT = 100  # larger repeat counts become unbounded (RE2 caps counts at 1000)
_MAX_FOLD_RANGE = 4096  # a case-insensitive range wider than this becomes "any character"
_ANY = "(?s:.)"


class _Untranslatable(Exception):
    """The pattern has a construct whose matches RE2 cannot over-approximate here."""


@functools.cache
def re2_available() -> bool:
    """Whether the ``re2`` extension (``google-re2``) imports in this process."""
    try:
        import re2  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _lower_inverse() -> dict[int, tuple[int, ...]]:
    """lowercase code point → every code point whose simple lowercase it is (itself
    included). Cased letters end below U+20000. About 20 ms, once per process."""
    import _sre

    inv: dict[int, list[int]] = {}
    for x in range(0x20000):
        low = _sre.unicode_tolower(x)
        if low != x:
            inv.setdefault(low, [low]).append(x)
    return {k: tuple(v) for k, v in inv.items()}


def _fold(chars: set[int], ascii_only: bool) -> set[int]:
    """Every code point that Python's ``re.IGNORECASE`` matches against one of ``chars``:
    ``x`` matches ``c`` when ``tolower(x)`` is ``tolower(c)`` or one of its ``re._casefix``
    equivalents."""
    import _sre

    if ascii_only:
        out = set(chars)
        for c in chars:
            if c < 128 and chr(c).isalpha():
                out |= {ord(chr(c).lower()), ord(chr(c).upper())}
        return out
    from re._casefix import _EXTRA_CASES

    inv = _lower_inverse()
    out = set(chars)
    for c in chars:
        low = _sre.unicode_tolower(c)
        for target in (low, *_EXTRA_CASES.get(low, ())):
            out.add(target)
            out.update(inv.get(target, ()))
    return out


def _esc(c: int) -> str:
    return f"\\x{{{c:x}}}"


def _charset(chars: set[int], negate: bool = False, extra: str = "") -> str:
    """An RE2 class of ``chars`` (code points) plus ``extra`` class items."""
    parts: list[str] = []
    cs = sorted(chars)
    i = 0
    while i < len(cs):
        j = i
        while j + 1 < len(cs) and cs[j + 1] == cs[j] + 1:
            j += 1
        parts.append(_esc(cs[i]) if i == j else f"{_esc(cs[i])}-{_esc(cs[j])}")
        i = j + 1
    body = "".join(parts) + extra
    if not body:
        return "[^\\x00-\\x{10ffff}]" if not negate else _ANY
    return f"[{'^' if negate else ''}{body}]"


@functools.cache
def _python_space() -> str:
    """Python's ``\\s`` for str patterns (``str.isspace``), as RE2 class items."""
    return _charset({c for c in range(0x3001) if chr(c).isspace()})[1:-1]


def _category(cat: Any, c: Any, ascii_only: bool, subset: bool) -> str | None:
    """RE2 class items for a ``\\d``/``\\w``/``\\s`` category: a superset of Python's (or a
    subset, inside a negated class); None for a negated category (``\\D``...) — the caller
    widens."""
    if cat is c.CATEGORY_DIGIT:
        return "0-9" if ascii_only or subset else "\\p{Nd}"
    if cat is c.CATEGORY_WORD:
        return "0-9A-Za-z_" if ascii_only or subset else "\\p{L}\\p{N}_"
    if cat is c.CATEGORY_SPACE:
        return "\\t\\n\\x0b\\x0c\\r " if ascii_only else _python_space()
    return None


def _in(items: list[tuple[Any, Any]], fl: int, c: Any) -> str:
    """Translate a character class (``IN``)."""
    negate = bool(items) and items[0][0] is c.NEGATE
    items = items[1:] if negate else items
    icase, ascii_only = bool(fl & re.IGNORECASE), bool(fl & re.ASCII)
    if negate and icase:
        return _ANY
    chars: set[int] = set()
    extra = ""
    for op, av in items:
        if op is c.LITERAL:
            chars.add(av)
        elif op is c.RANGE:
            lo, hi = av
            if icase and hi - lo > _MAX_FOLD_RANGE:
                return _ANY
            if icase:
                chars.update(range(lo, hi + 1))
            else:
                extra += f"{_esc(lo)}-{_esc(hi)}"
        elif op is c.CATEGORY:
            part = _category(av, c, ascii_only, subset=negate)
            if part is None:
                return _ANY
            extra += part
        else:
            return _ANY
    if icase:
        chars = _fold(chars, ascii_only)
    return _charset(chars, negate, extra)


def _tr(items: Any, fl: int, c: Any) -> str:
    out: list[str] = []
    for op, av in items:
        icase = bool(fl & re.IGNORECASE)
        if op is c.LITERAL:
            out.append(_charset(_fold({av}, bool(fl & re.ASCII))) if icase else _esc(av))
        elif op is c.NOT_LITERAL:
            out.append(_ANY if icase else _charset({av}, negate=True))
        elif op is c.ANY:
            out.append(_ANY if fl & re.DOTALL else "[^\\n]")
        elif op is c.IN:
            out.append(_in(list(av), fl, c))
        elif op is c.BRANCH:
            out.append("(?:" + "|".join(_tr(b, fl, c) for b in av[1]) + ")")
        elif op is c.SUBPATTERN:
            _group, add, dele, p = av
            out.append("(?:" + _tr(p, (fl | add) & ~dele, c) + ")")
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            lo, hi, p = av
            lo = min(lo, _MAX_COUNT)
            hi = hi if hi <= _MAX_COUNT else None
            body = "(?:" + _tr(p, fl, c) + ")"
            lazy = "?" if op is c.MIN_REPEAT else ""  # so that RE2's match ends where Python's does
            out.append(body + (f"{{{lo},}}" if hi is None else f"{{{lo},{hi}}}") + lazy)
        elif op is c.ATOMIC_GROUP:
            out.append("(?:" + _tr(av, fl, c) + ")")
        elif op is c.AT:
            if av in (c.AT_BOUNDARY, c.AT_NON_BOUNDARY):
                continue  # RE2's \b is ASCII-only: dropped (Python decides)
            if av is c.AT_BEGINNING and fl & re.MULTILINE:
                out.append("(?m:^)")
            elif av is c.AT_END and fl & re.MULTILINE:
                out.append("(?m:$)")
            else:
                raise _Untranslatable("an anchor at the start or end of the text")
        elif op in (c.ASSERT, c.ASSERT_NOT) and av[0] < 0:
            continue  # lookbehind: dropped (Python decides, with 64 characters before)
        else:  # lookahead (may need text past RE2's match), backreference, conditional
            raise _Untranslatable(str(op))
    return "".join(out)


def _cut_any_run(parsed: Any, c: Any) -> list[Any]:
    """The top-level items up to the first unbounded repeat of a class RE2 sees as "any
    character" (``(?s).*``, ``[^\\W\\d]+``), that repeat kept at its minimum count: a prefix of
    a pattern matches wherever the pattern does, and RE2 no longer runs each candidate's
    match to the end of the text."""
    items = list(parsed)
    for k, (op, av) in enumerate(items):
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT) and av[1] > _MAX_COUNT:
            body = _tr(av[2], parsed.state.flags, c)
            if body == _ANY:
                return [*items[:k], (c.MAX_REPEAT, (min(av[0], _MAX_COUNT), min(av[0], _MAX_COUNT), av[2]))]
    return items


def candidate_pattern(regex: re.Pattern[str]) -> str | None:
    """An RE2 pattern matching at least wherever ``regex`` matches (see the module
    docstring), or None when there is none (the Python path is taken): a bytes pattern, one
    that can match the empty string, non-multiline ``^``/``$``, ``\\A``, ``\\Z``, a lookahead,
    a backreference, ``(?(1)...)``."""
    if not isinstance(regex.pattern, str):
        return None
    try:
        from re import _constants as c  # type: ignore[attr-defined]
        from re import _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(regex.pattern, regex.flags)
        if parsed.getwidth()[0] == 0:
            return None
        return _tr(_cut_any_run(parsed, c), parsed.state.flags, c)
    except (_Untranslatable, re.error, RecursionError, AttributeError, TypeError):
        return None


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
    around it (``prefix``: the translation up to that byte), as ripgrep does."""

    def __init__(self, full: Any, anchor: tuple[bytes, int, int, Any, int] | None) -> None:
        self.full = full
        self.anchor = anchor


def _anchor(regex: re.Pattern[str]) -> tuple[bytes, int, int, Any, int] | None:
    try:
        from re import _constants as c  # type: ignore[attr-defined]
        from re import _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(regex.pattern, regex.flags)
        flags = parsed.state.flags
        items = list(parsed)
        width = 0
        for k, (op, av) in enumerate(items):
            if op is c.LITERAL and av < 128 and _fold({av}, bool(flags & re.ASCII)) == {av} and width > 0:
                prefix = _compile_re2(_tr(items[: k + 1], flags, c))
                return None if prefix is None else (bytes([av]), width, 4 * width, prefix, 4 * (width + 1))
            lo, hi = _parser.SubPattern(parsed.state, [(op, av)]).getwidth()
            if lo != hi or op is c.AT:
                return None
            width += lo
    except (_Untranslatable, re.error, RecursionError, AttributeError, TypeError):
        return None
    return None


def compile_candidates(regex: re.Pattern[str]) -> Candidates | None:
    """The compiled RE2 candidate finder for ``regex``, or None (no ``re2``, no
    translation, or RE2 refused the translation)."""
    if not re2_available():
        return None
    pattern = candidate_pattern(regex)
    full = None if pattern is None else _compile_re2(pattern)
    return None if full is None else Candidates(full, _anchor(regex))


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
    anchor = finder.anchor

    def next_candidate() -> tuple[int, int]:
        """The leftmost RE2 match at or after ``pos``: around the anchor byte while it is
        rare enough, else by RE2 over the rest."""
        nonlocal qpos, probes, anchor
        while anchor is not None:
            byte, min_b, max_b, prefix, prefix_b = anchor
            q = mm.find(byte, b_start + max(qpos, pos + min_b), b_start + b_end) - b_start
            if q < 0:
                return -1, -1
            lo, last_start = max(pos, q - max_b), q - min_b
            if lo <= last_start:
                i = prefix.Match(unanchored, view, lo, min(b_end, last_start + prefix_b))[0][0]
                if 0 <= i <= last_start:
                    qpos = q
                    return i, finder.full.Match(anchored, view, i, b_end)[0][1]
            qpos = q + 1
            probes += 1
            if probes > 1024 and q < 4096 * probes:  # the byte is common here
                anchor = None
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
        if j - i > overlap - _GREP_SUFFIX_CHARS:  # the window holds RE2's match (within reason:
            # a class widened to "any character" makes it run to the end of the text)
            w1 = max(w1, min(reader.char_offset(b_start + j) + _GREP_SUFFIX_CHARS, c + 8 * overlap))
        w1 = min(end, w1, c + GREP_MAX_MATCH_CHARS)
        text = read(w0, w1)
        m = regex.match(text, c - w0)
        while m is not None and _near_cut(w1, w0 + m.end(), end):
            grown = _grow(w1, c, end)
            if grown == w1:
                break
            w1 = grown
            text = read(w0, w1)
            m = regex.match(text, c - w0)
        if m is not None and m.end() > m.start():
            yield w0 + m.start(), w0 + m.end()
            found += 1
            if found >= max_hits:
                return
            last_end = w0 + m.end()
            pos = reader.byte_offset(last_end) - b_start
            continue
        misses += 1
        pos = _next_char(view, i, b_end)
        if misses > MAX_MISSES:  # a loose translation: Python alone is faster
            yield from grep(read, regex, max(c + 1, last_end), end, max_hits - found)
            return
