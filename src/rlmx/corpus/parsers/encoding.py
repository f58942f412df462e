"""Character encoding detection for text formats.

:func:`decode_text` tries, in order: a byte-order mark (UTF-8/16/32), pure ASCII, strict
UTF-8, then legacy encodings. For legacy bytes it asks charset-normalizer for its best guess
and weighs that guess against two common alternatives — Windows-1252/ISO-8859-1 and
Big5 (cp950, whose smart quotes and dashes show up in Western documents saved on Chinese
Windows) — keeping the decoding with the fewest *mojibake signs* (:func:`badness`). This
matters for mostly-ASCII documents with a handful of non-ASCII bytes, where statistical
detectors have too little to go on: ``b"man\\xa1\\xa6s"`` is ``man’s`` in cp950, while
``b"the \\xbd\\xa2 decrease"`` is ``the ½¢ decrease`` in ISO-8859-1.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

__all__ = ["badness", "codec_label", "decode_text"]

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_MAX_RUNS = 5000  # runs scored per candidate: bounds the cost on large non-ASCII texts
_C1 = re.compile(rb"[\x80-\x9f]")
_HIGH_BYTES = bytes(range(0x80, 0x100))
SPARSE_FRACTION = 0.1  # below this share of non-ASCII bytes, a document is "mostly ASCII"


def codec_label(name: str) -> str:
    """Python's canonical codec name for ``name``, ISO-8859 ones spelled ``iso-8859-N``.
    Raises ``LookupError`` for an unknown encoding."""
    label = codecs.lookup(name).name
    return "iso-" + label[3:] if label.startswith("iso8859-") else label


def _is_cjk(c: str) -> bool:
    o = ord(c)
    return (
        0x3040 <= o <= 0x30FF  # kana
        or 0x3400 <= o <= 0x9FFF  # CJK ideographs
        or 0xAC00 <= o <= 0xD7AF  # Hangul syllables
        or 0xF900 <= o <= 0xFAFF
        or 0xFF61 <= o <= 0xFF9F  # half-width katakana
        or 0x20000 <= o <= 0x2FFFF
    )


def _is_latin(c: str) -> bool:
    return 0xC0 <= ord(c) <= 0x24F or 0x1E00 <= ord(c) <= 0x1EFF


def badness(text: str) -> int:
    """Count signs of a wrong decoding in ``text`` (0 = nothing suspicious).

    Signs: control, private-use or unassigned characters; box drawing; a lone CJK character
    between ASCII characters; a run of non-ASCII characters mixing letters and symbols; a
    run of Latin-1 symbols glued between two ASCII letters (``man¡¦s``); an upper-case
    non-ASCII letter right after a lower-case letter (``maníŽs``); three or more accented
    Latin letters in a row (``Ïðèâåò``, Cyrillic read as cp1252). Scores the first
    5,000 non-ASCII runs only.
    """
    score = 0
    n = len(text)
    for i, m in enumerate(_NON_ASCII_RUN.finditer(text)):
        if i >= _MAX_RUNS:
            break
        run, a, b = m.group(), m.start(), m.end()
        prev = text[a - 1] if a > 0 else " "
        nxt = text[b] if b < n else " "
        cats = [unicodedata.category(c) for c in run]
        letters = sum(c[0] == "L" for c in cats)
        for c, cat in zip(run, cats, strict=True):
            if cat in ("Cc", "Co", "Cn", "Cs"):
                score += 3
            elif 0x2500 <= ord(c) <= 0x259F:
                score += 1
        if len(run) == 1 and _is_cjk(run) and prev.isascii() and nxt.isascii():
            score += 1
        if letters >= 3 and all(c[0] != "L" or _is_latin(ch) for ch, c in zip(run, cats, strict=True)):
            score += 1
        if (0 < letters < len(run) and any(c[0] in "SP" for c in cats)) or (
            letters == 0
            and prev.isascii()
            and prev.isalpha()
            and nxt.isascii()
            and nxt.isalpha()
            and any(0xA1 <= ord(c) <= 0xBF for c in run)
        ):
            score += len(run)
        lower_before = prev.islower()
        for c in run:
            if c.isupper() and lower_before:
                score += 1
            lower_before = c.islower()
    return score


def _western(data: bytes) -> tuple[str, str] | None:
    """Decode as Windows-1252, named ISO-8859-1 when no byte is in 0x80-0x9F (where the
    two differ); plain ISO-8859-1 when cp1252 leaves a byte undefined."""
    has_c1 = _C1.search(data) is not None
    if has_c1:
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            return None
    return data.decode("iso-8859-1"), "iso-8859-1"


def _normalizer_guesses(data: bytes, limit: int = 6) -> list[tuple[str, str]]:
    """charset-normalizer's candidate decodings, best first."""
    import charset_normalizer  # imported on first use (legacy encodings are rare)

    out: list[tuple[str, str]] = []
    for match in list(charset_normalizer.from_bytes(data))[:limit]:
        try:
            enc = codec_label(match.encoding)
            out.append((data.decode(enc), enc))
        except (UnicodeDecodeError, LookupError):
            continue
    return out


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode ``data`` and return ``(text, encoding)``.

    ``encoding`` is a Python codec name: ``"ascii"``, ``"utf-8"``, ``"utf-8-sig"``,
    ``"utf-16"``, ``"utf-32"``, or a legacy one (``"iso-8859-1"``, ``"cp1252"``,
    ``"cp950"``, ``"cp1251"``...). The text is not canonicalised (BOMs other than UTF-8's
    are consumed by their codecs). Raises ``UnicodeDecodeError`` only when no candidate
    decodes the bytes — never in practice, as ISO-8859-1 decodes anything without C1 bytes.
    """
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc), enc
            except UnicodeDecodeError:
                break
    if data.isascii():
        return data.decode("ascii"), "ascii"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    guesses = _normalizer_guesses(data)
    west = [w] if (w := _western(data)) is not None else []
    try:
        big5 = [(data.decode("cp950"), "cp950")]
    except UnicodeDecodeError:
        big5 = []
    # Sparse non-ASCII bytes: the statistical guess is weak, prefer Western on ties.
    non_ascii = len(data) - len(data.translate(None, _HIGH_BYTES))
    sparse = non_ascii < SPARSE_FRACTION * len(data)
    candidates = (west + guesses + big5) if sparse else (guesses[:1] + west + guesses[1:] + big5)
    if not candidates:
        return data.decode("iso-8859-1"), "iso-8859-1"
    scored = [(badness(text), i) for i, (text, _) in enumerate(candidates)]
    text, encoding = candidates[min(scored)[1]]
    if encoding == "big5" and big5 and big5[0][0] == text:
        encoding = "cp950"  # the same text: name the superset, consistently
    return text, encoding
