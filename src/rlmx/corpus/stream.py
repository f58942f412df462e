"""Large plain-text files in blocks: checks and hashing, then canonicalisation, checksum,
offset index and keyword chunks, without holding the file (or its text) in memory.

A text or source-code file of :data:`STREAM_MIN_BYTES` or more is read twice, a block of
:data:`BLOCK_BYTES` at a time:

1. :func:`scan` hashes the raw bytes and makes the checks the in-memory parsers make
   (binary head, control characters, whitespace only), and tells whether the file is UTF-8
   (with or without a BOM) or ASCII. Other encodings are left to the in-memory path.
2. :class:`TextStream` decodes, canonicalises (:class:`Canonicalizer`), writes the canonical
   text to a temporary file, hashes it, builds its offset index (:class:`OffsetIndexBuilder`)
   and yields its keyword-index chunks (:class:`ChunkCutter`).

Every step gives exactly what the in-memory path gives for the same bytes: the same text,
checksum, offsets (code points), ``.idx`` blob and chunks (tests/test_ingest_stream.py).
"""

from __future__ import annotations

import codecs
import hashlib
import os
import sys
import tempfile
import unicodedata
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlmx.corpus.canonical import CHECKPOINT
from rlmx.corpus.index import CHUNK_CHARS
from rlmx.corpus.parsers import ParseError
from rlmx.corpus.parsers.text import decode_checked

__all__ = [
    "BLOCK_BYTES",
    "STREAM_MIN_BYTES",
    "STREAM_PARSERS",
    "Canonicalizer",
    "ChunkCutter",
    "OffsetIndexBuilder",
    "Scan",
    "TextStream",
    "scan",
]

STREAM_MIN_BYTES = 32 * 1024 * 1024
"""Text and source files of this size or more are ingested in blocks."""
BLOCK_BYTES = 4 * 1024 * 1024
STREAM_PARSERS = frozenset({"text", "code"})  # verbatim parsers: the text is the decoded file
_HEAD_BYTES = 1 << 18  # enough bytes for the parsers' checks on the first 65,536 characters
_UTF8_BOM = codecs.BOM_UTF8
_CUT_SEARCH = 4096  # characters searched back for an ASCII one (more text waits for the next piece)


@dataclass
class Scan:
    """What :func:`scan` learnt of a file: ``raw_sha256`` (hex), ``size`` (bytes), ``head``
    (its first bytes, for choosing the parser), ``encoding`` (``"ascii"``, ``"utf-8"`` or
    ``"utf-8-sig"``; None when it is not UTF-8: not streamable), ``lines`` (``\\n`` + 1),
    ``failure`` (the parser's reason, when a check failed)."""

    raw_sha256: str
    size: int
    head: bytes
    encoding: str | None
    lines: int
    failure: ParseError | None = None


def _blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while block := f.read(BLOCK_BYTES):
            yield block


def scan(path: Path, media_type: str = "text/plain") -> Scan:
    """Hash ``path`` and check it as :func:`~rlmx.corpus.parsers.text.decode_checked`
    would, one block at a time. Raises ``OSError`` when it cannot be read."""
    sha = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    head = b""
    size = lines = 0
    ascii_only, utf8, blank = True, True, True
    for block in _blocks(path):
        sha.update(block)
        if len(head) < _HEAD_BYTES:
            head += block[: _HEAD_BYTES - len(head)]
        size += len(block)
        lines += block.count(b"\n")
        if ascii_only and not block.isascii():
            ascii_only = False
        if utf8:
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError:
                utf8 = False
                continue
            if blank and not text.isspace() and text.strip("\ufeff\x00"):
                blank = False
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    encoding = None
    if utf8:
        encoding = "ascii" if ascii_only else ("utf-8-sig" if head.startswith(_UTF8_BOM) else "utf-8")
    result = Scan(sha.hexdigest(), size, head, encoding, lines + 1)
    if encoding is not None:
        try:  # the parsers' checks look at the first bytes / characters only
            decode_checked(_whole_chars(head), path, media_type)
        except ParseError as e:
            if "only whitespace" not in e.reason:
                result.failure = e
        if blank and result.failure is None:
            result.failure = ParseError("no text: the file holds only whitespace", media_type=media_type)
    return result


def _whole_chars(head: bytes) -> bytes:
    """``head`` without a UTF-8 sequence cut off at its end."""
    end = len(head)
    i = end - 1
    while i >= 0 and end - i <= 4 and head[i] & 0xC0 == 0x80:
        i -= 1
    if i >= 0 and head[i] >= 0xC0:
        need = 2 if head[i] < 0xE0 else 3 if head[i] < 0xF0 else 4
        if end - i < need:
            return head[:i]
    return head


class Canonicalizer:
    """:func:`~rlmx.corpus.canonical.canonicalize` in pieces: ``feed(text)`` returns the
    canonical text that is final so far, :meth:`finish` the rest. The concatenation equals
    ``canonicalize(whole text)``.

    Text is only cut before an ASCII character (never between ``\\r`` and ``\\n``): ASCII
    characters have combining class 0 and never end a canonical composition, so NFC of the
    pieces is NFC of the whole; NULs go before cutting, and leading BOMs are dropped until
    the first other character."""

    def __init__(self) -> None:
        self._pending = ""
        self._at_start = True

    def feed(self, text: str) -> str:
        s = self._pending + text.replace("\x00", "") if "\x00" in text else self._pending + text
        if self._at_start:
            s = s.lstrip("\ufeff")
            if not s:
                self._pending = ""
                return ""
            self._at_start = False
        cut = _cut(s)
        self._pending = s[cut:]
        return _canon(s[:cut])

    def finish(self) -> str:
        s, self._pending = self._pending, ""
        if self._at_start:
            s = s.lstrip("\ufeff")
        return _canon(s)


def _cut(s: str) -> int:
    """Where ``s`` may be cut: after its last newline, else before its last ASCII character
    (not a ``\\n`` after ``\\r``); 0 when there is no such place."""
    nl = s.rfind("\n")
    if nl >= 0:
        return nl + 1
    for i in range(len(s) - 1, max(0, len(s) - _CUT_SEARCH), -1):
        if s[i] < "\x80":
            return i
    return 0


def _canon(s: str) -> str:
    if "\r" in s:
        s = s.replace("\r\n", "\n").replace("\r", "\n")
    if not s.isascii():
        s = unicodedata.normalize("NFC", s)
    return s


class OffsetIndexBuilder:
    """:func:`~rlmx.corpus.canonical.build_offset_index` in pieces of canonical text:
    ``feed(text)``; :meth:`finish` returns the ``.idx`` blob, or None for an ASCII text."""

    def __init__(self) -> None:
        self._offsets = array("Q", [0])
        self._bytes = 0
        self._tail = ""
        self.ascii = True

    def feed(self, text: str) -> None:
        if not text:
            return
        if self.ascii and not text.isascii():
            self.ascii = False
        s = self._tail + text
        full = len(s) - len(s) % CHECKPOINT
        if s.isascii():
            self._offsets.extend(range(self._bytes + CHECKPOINT, self._bytes + full + 1, CHECKPOINT))
            self._bytes += full
        else:
            for i in range(0, full, CHECKPOINT):
                self._bytes += len(s[i : i + CHECKPOINT].encode("utf-8"))
                self._offsets.append(self._bytes)
        self._tail = s[full:]

    def finish(self) -> bytes | None:
        if self.ascii:
            return None
        offsets = self._offsets
        if self._tail:
            offsets.append(self._bytes + len(self._tail.encode("utf-8")))
        if len(offsets) == 1:
            offsets.append(0)
        if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
            offsets.byteswap()
        return offsets.tobytes()


class ChunkCutter:
    """:func:`~rlmx.corpus.index.chunk_spans` in pieces: ``feed(text)`` and :meth:`finish`
    yield ``(start, end, chunk text)`` with offsets into the whole text, the same spans."""

    def __init__(self, size: int = CHUNK_CHARS) -> None:
        self.size = size
        self._buf = ""
        self._base = 0

    def _cut(self, final: bool) -> Iterator[tuple[int, int, str]]:
        buf, size, pos = self._buf, self.size, 0
        n = len(buf)
        while n - pos > size or (final and pos < n):
            end = min(n, pos + size)
            if end < n:
                cut = buf.rfind("\n", pos + size // 2, end)
                if cut < 0:
                    cut = buf.rfind(" ", pos + size // 2, end)
                if cut > pos:
                    end = cut + 1
            yield self._base + pos, self._base + end, buf[pos:end]
            pos = end
        self._buf = buf[pos:]
        self._base += pos

    def feed(self, text: str) -> Iterator[tuple[int, int, str]]:
        self._buf += text
        return self._cut(False)

    def finish(self) -> Iterator[tuple[int, int, str]]:
        return self._cut(True)


@dataclass
class TextStream:
    """Canonicalise ``path`` (UTF-8, checked by :func:`scan`) in blocks.

    Iterate :meth:`chunks` to its end (it yields the keyword-index chunks); meanwhile the
    canonical text is written to :attr:`text_path` (a temporary file: :meth:`close` removes
    it). Afterwards :attr:`text_sha256`, :attr:`length_chars` and :attr:`offset_index` are
    set. Raises ``OSError`` when the file cannot be read, ``ValueError`` when its bytes
    changed since ``raw_sha256`` was taken."""

    path: Path
    raw_sha256: str
    tmp_dir: str | None = None
    text_path: Path = field(init=False)
    text_sha256: str = ""
    length_chars: int = 0
    offset_index: bytes | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        fd, name = tempfile.mkstemp(prefix="rlmx-text-", suffix=".txt", dir=self.tmp_dir)
        os.close(fd)
        self.text_path = Path(name)

    def close(self) -> None:
        self.text_path.unlink(missing_ok=True)

    def chunks(self) -> Iterator[tuple[int, int, str]]:
        raw, text_sha = hashlib.sha256(), hashlib.sha256()
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        canon, offsets, cutter = Canonicalizer(), OffsetIndexBuilder(), ChunkCutter()
        length = 0
        with open(self.text_path, "wb") as out:

            def emit(piece: str) -> Iterator[tuple[int, int, str]]:
                nonlocal length
                if piece:
                    data = piece.encode("utf-8")
                    out.write(data)
                    text_sha.update(data)
                    offsets.feed(piece)
                    length += len(piece)
                    yield from cutter.feed(piece)

            for block in _blocks(self.path):
                raw.update(block)
                yield from emit(canon.feed(decoder.decode(block)))
            yield from emit(canon.feed(decoder.decode(b"", final=True)))
            yield from emit(canon.finish())
            yield from cutter.finish()
        if raw.hexdigest() != self.raw_sha256:
            raise ValueError(f"{self.path} changed while it was being read; ingest it again")
        self.text_sha256, self.length_chars = text_sha.hexdigest(), length
        self.offset_index = offsets.finish()
