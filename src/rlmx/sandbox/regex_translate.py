"""Python ``re`` pattern → an RE2 pattern that matches wherever it does (a *superset*), for
:mod:`rlmx.sandbox.regex_engine`, which lets RE2 propose match starts and Python decide.

Case-insensitive characters become the explicit classes of what Python's ``re.IGNORECASE``
accepts (``_sre.unicode_tolower`` and ``re._casefix``: ``İ ı`` for ``i``, ``ſ`` for ``s``,
``K`` for ``k``...); ``\\d``/``\\w``/``\\s`` become Unicode classes that contain Python's
(RE2's Unicode tables are newer than Python 3.11's, and newer versions only add characters);
what RE2 lacks or treats differently is widened: lookbehinds and ``\\b``/``\\B`` are dropped,
possessive and atomic groups become plain ones, repeat counts over 100 are capped at 100 (at
least) or unbounded (at most). There is no translation (:func:`candidate_pattern` returns
None) for a pattern that can match the empty string, ``^``/``$`` without ``re.MULTILINE``,
``\\A``, ``\\Z``, a lookahead, a backreference or a conditional group.
"""

from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["ANY", "Untranslatable", "candidate_pattern", "fold", "translate_items"]

_MAX_COUNT = 100  # larger repeat counts become unbounded (RE2 caps counts at 1000)
_MAX_FOLD_RANGE = 4096  # a case-insensitive range wider than this becomes "any character"
ANY = "(?s:.)"
"""RE2 for "any character"."""


class Untranslatable(Exception):
    """The pattern has a construct whose matches RE2 cannot over-approximate here."""


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


def fold(chars: set[int], ascii_only: bool) -> set[int]:
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
        return "[^\\x00-\\x{10ffff}]" if not negate else ANY
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
        return ANY
    chars: set[int] = set()
    extra = ""
    for op, av in items:
        if op is c.LITERAL:
            chars.add(av)
        elif op is c.RANGE:
            lo, hi = av
            if icase and hi - lo > _MAX_FOLD_RANGE:
                return ANY
            if icase:
                chars.update(range(lo, hi + 1))
            else:
                extra += f"{_esc(lo)}-{_esc(hi)}"
        elif op is c.CATEGORY:
            part = _category(av, c, ascii_only, subset=negate)
            if part is None:
                return ANY
            extra += part
        else:
            return ANY
    if icase:
        chars = fold(chars, ascii_only)
    return _charset(chars, negate, extra)


def translate_items(items: Any, fl: int, c: Any) -> str:
    """RE2 text for parsed items ``items`` (``re._parser``) under flags ``fl`` (``c``: ``re._constants``).
    Raises :class:`Untranslatable`."""
    out: list[str] = []
    for op, av in items:
        icase = bool(fl & re.IGNORECASE)
        if op is c.LITERAL:
            out.append(_charset(fold({av}, bool(fl & re.ASCII))) if icase else _esc(av))
        elif op is c.NOT_LITERAL:
            out.append(ANY if icase else _charset({av}, negate=True))
        elif op is c.ANY:
            out.append(ANY if fl & re.DOTALL else "[^\\n]")
        elif op is c.IN:
            out.append(_in(list(av), fl, c))
        elif op is c.BRANCH:
            out.append("(?:" + "|".join(translate_items(b, fl, c) for b in av[1]) + ")")
        elif op is c.SUBPATTERN:
            _group, add, dele, p = av
            out.append("(?:" + translate_items(p, (fl | add) & ~dele, c) + ")")
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            lo, hi, p = av
            lo = min(lo, _MAX_COUNT)
            hi = hi if hi <= _MAX_COUNT else None
            body = "(?:" + translate_items(p, fl, c) + ")"
            lazy = "?" if op is c.MIN_REPEAT else ""  # so that RE2's match ends where Python's does
            out.append(body + (f"{{{lo},}}" if hi is None else f"{{{lo},{hi}}}") + lazy)
        elif op is c.ATOMIC_GROUP:
            out.append("(?:" + translate_items(av, fl, c) + ")")
        elif op is c.AT:
            if av in (c.AT_BOUNDARY, c.AT_NON_BOUNDARY):
                continue  # RE2's \b is ASCII-only: dropped (Python decides)
            if av is c.AT_BEGINNING and fl & re.MULTILINE:
                out.append("(?m:^)")
            elif av is c.AT_END and fl & re.MULTILINE:
                out.append("(?m:$)")
            else:
                raise Untranslatable("an anchor at the start or end of the text")
        elif op in (c.ASSERT, c.ASSERT_NOT) and av[0] < 0:
            continue  # lookbehind: dropped (Python decides, with 64 characters before)
        else:  # lookahead (may need text past RE2's match), backreference, conditional
            raise Untranslatable(str(op))
    return "".join(out)


def _cut_any_run(parsed: Any, c: Any) -> list[Any]:
    """The top-level items up to the first unbounded repeat of a class RE2 sees as "any
    character" (``(?s).*``, ``[^\\W\\d]+``), that repeat kept at its minimum count: a prefix of
    a pattern matches wherever the pattern does, and RE2 no longer runs each candidate's
    match to the end of the text."""
    items = list(parsed)
    for k, (op, av) in enumerate(items):
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT) and av[1] > _MAX_COUNT:
            body = translate_items(av[2], parsed.state.flags, c)
            if body == ANY:
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
        return translate_items(_cut_any_run(parsed, c), parsed.state.flags, c)
    except (Untranslatable, re.error, RecursionError, AttributeError, TypeError):
        return None
