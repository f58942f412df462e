"""Canonical text and its lazy, memory-mapped reader.

Canonical text (DESIGN.md): UTF-8, Unicode NFC, ``\\n`` newlines. All offsets are
code-point offsets into it. A canonical text is stored as two blobs:

* ``<key>.txt`` — the UTF-8 bytes;
* ``<key>.idx`` — for non-ASCII texts only, little-endian uint64 byte offsets of every
  ``CHECKPOINT``-th code point (entries ``0 .. ceil(n / CHECKPOINT)``, the last one being the
  byte length), so that a slice ``[a, b)`` decodes at most ``2 * CHECKPOINT`` extra
  characters. ASCII texts need no index: byte offset == character offset.

:class:`TextReader` maps the file and never reads it whole, so opening and slicing a 1 GB
document costs memory proportional to the slice, not the document.
"""

from __future__ import annotations

import mmap
import os
import sys
import unicodedata
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from pathlib import Path

__all__ = ["CHECKPOINT", "TextReader", "build_offset_index", "canonicalize"]

CHECKPOINT = 4096
_PREFETCH_BYTES = 1 << 18


def canonicalize(text: str) -> str:
    """Return the canonical form of ``text``: NFC, ``\\r\\n``/``\\r`` → ``\\n``, no BOM, no NUL.

    Idempotent: ``canonicalize(canonicalize(t)) == canonicalize(t)`` (NULs go first and
    every leading BOM is dropped, so neither can expose another on a second pass)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if text.startswith("\ufeff"):
        text = text.lstrip("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return text


def build_offset_index(text: str) -> bytes | None:
    """Return the ``.idx`` blob for ``text`` (see module doc), or None when ``text`` is ASCII."""
    if text.isascii():
        return None
    offsets = array("Q", [0])
    total = 0
    for i in range(0, len(text), CHECKPOINT):
        total += len(text[i : i + CHECKPOINT].encode("utf-8"))
        offsets.append(total)
    if len(offsets) == 1:
        offsets.append(0)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        offsets.byteswap()
    return offsets.tobytes()


class TextReader:
    """Lazy read access to one stored canonical text.

    ``TextReader(text_path, length, index_path=None)``: ``length`` is the text's length in
    code points; ``index_path`` is required for non-ASCII texts. Slicing returns ``str``.
    Raises ``ValueError`` when a non-ASCII text comes without its index.
    """

    def __init__(self, text_path: str | Path, length: int, index_path: str | Path | None = None):
        self.length = length
        self._file = open(text_path, "rb")  # noqa: SIM115 - kept open for the mmap
        size = os.fstat(self._file.fileno()).st_size
        self._size = size
        self._mm: mmap.mmap | None = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        if self._mm is not None and hasattr(mmap, "MADV_RANDOM"):
            # Slices touch only the pages they read (no 2 MB read-around per fault), so the
            # REPL's resident memory follows what the code reads, not the corpus size.
            self._mm.madvise(mmap.MADV_RANDOM)
        self._idx: array[int] | None = None
        if size != length:
            if index_path is None:
                raise ValueError(f"{text_path}: non-ASCII text needs its offset index")
            idx: array[int] = array("Q")
            with open(index_path, "rb") as f:
                idx.frombytes(f.read())
            if sys.byteorder != "little":  # pragma: no cover
                idx.byteswap()
            self._idx = idx

    def __len__(self) -> int:
        return self.length

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
        self._file.close()

    def _byte_range(self, a: int, b: int) -> tuple[int, int, int]:
        """Return (byte_start, byte_end, char_base) covering chars ``[a, b)``."""
        assert self._idx is not None
        ca = a // CHECKPOINT
        cb = (b - 1) // CHECKPOINT + 1
        return self._idx[ca], self._idx[min(cb, len(self._idx) - 1)], ca * CHECKPOINT

    def _prefetch(self, b0: int, b1: int) -> None:
        """Ask the kernel to read a large byte range ahead (random-access mode otherwise
        faults it in page by page)."""
        if self._mm is not None and b1 - b0 >= _PREFETCH_BYTES and hasattr(mmap, "MADV_WILLNEED"):
            lo = b0 - b0 % mmap.PAGESIZE
            self._mm.madvise(mmap.MADV_WILLNEED, lo, b1 - lo)

    def read(self, start: int, end: int) -> str:
        """Return canonical text ``[start, end)`` (clamped to the text, Python slice rules)."""
        start, end, _ = slice(start, end).indices(self.length)
        if end <= start or self._mm is None:
            return ""
        if self._idx is None:
            self._prefetch(start, end)
            return self._mm[start:end].decode("ascii")
        b0, b1, base = self._byte_range(start, end)
        self._prefetch(b0, b1)
        chunk = self._mm[b0:b1].decode("utf-8")
        return chunk[start - base : end - base]

    def byte_offset(self, char: int) -> int:
        """The byte offset of code point ``char`` (0 <= char <= length)."""
        if self._idx is None:
            return char
        k = char // CHECKPOINT
        b0 = self._idx[k]
        if char == k * CHECKPOINT or self._mm is None:
            return int(b0)
        b1 = self._idx[min(k + 1, len(self._idx) - 1)]
        return int(b0) + len(self._mm[b0:b1].decode("utf-8")[: char - k * CHECKPOINT].encode("utf-8"))

    def char_offset(self, byte: int) -> int:
        """The code point at byte offset ``byte``, which must start a character."""
        if self._idx is None or self._mm is None:
            return byte
        k = bisect_right(self._idx, byte) - 1
        return k * CHECKPOINT + len(self._mm[self._idx[k] : byte].decode("utf-8"))

    def find_bytes(self, needle: bytes, start: int, end: int) -> int:
        """The lowest byte offset of ``needle`` in bytes ``[start, end)`` of the file, or -1
        (no decoding: a UTF-8 needle only matches at a character boundary)."""
        if self._mm is None:
            return -1
        return self._mm.find(needle, start, end)

    def __getitem__(self, key: int | slice) -> str:
        if isinstance(key, int):
            if key < 0:
                key += self.length
            if not 0 <= key < self.length:
                raise IndexError("text index out of range")
            return self.read(key, key + 1)
        if key.step not in (None, 1):
            return self.read(0, self.length)[key]
        start, end, _ = key.indices(self.length)
        return self.read(start, end)

    def iter_blocks(self, block_chars: int = 1 << 22) -> Iterator[tuple[int, str]]:
        """Yield ``(char_offset, text)`` blocks of about ``block_chars`` characters that end at
        a newline when one is near, so line-oriented regexes never straddle two blocks."""
        pos = 0
        while pos < self.length:
            end = min(self.length, pos + block_chars)
            block = self.read(pos, end)
            if end < self.length:
                cut = block.rfind("\n", len(block) // 2)
                if cut > 0:
                    block = block[: cut + 1]
            yield pos, block
            pos += len(block)
