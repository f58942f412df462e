"""Canonical text (NFC, ``\\n``, no BOM) and the lazy, memory-mapped TextReader."""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import pytest

from rlmx.corpus.canonical import CHECKPOINT, TextReader, build_offset_index, canonicalize

NON_ASCII = "aé€😀 \nzßΩ\u0301ü"


def _store(tmp_path: Path, text: str, name: str = "t") -> TextReader:
    (tmp_path / f"{name}.txt").write_bytes(text.encode("utf-8"))
    idx = build_offset_index(text)
    index_path = None
    if idx is not None:
        index_path = tmp_path / f"{name}.idx"
        index_path.write_bytes(idx)
    return TextReader(tmp_path / f"{name}.txt", len(text), index_path)


def test_canonicalize_nfc_newlines_bom_nul() -> None:
    decomposed = "Cafe\u0301 \ufb01"  # e + combining acute; the fi ligature is NFC-stable
    assert canonicalize(decomposed) == "Café \ufb01"
    assert canonicalize(decomposed) == unicodedata.normalize("NFC", decomposed)
    assert canonicalize("a\r\nb\rc\n") == "a\nb\nc\n"
    assert canonicalize("\ufeffhello") == "hello"
    assert canonicalize("a\x00b") == "ab"
    assert canonicalize("") == ""


def test_canonicalize_is_idempotent() -> None:
    rnd = random.Random(7)
    for _ in range(50):
        s = "".join(rnd.choice("ab\r\n\u0301e\ufeff\x00Å") for _ in range(rnd.randint(0, 60)))
        once = canonicalize(s)
        assert canonicalize(once) == once
        assert "\r" not in once and "\x00" not in once


def test_offset_index_none_for_ascii_and_layout() -> None:
    assert build_offset_index("plain ascii") is None
    text = "é" * (2 * CHECKPOINT + 5)
    idx = build_offset_index(text)
    assert idx is not None
    entries = [int.from_bytes(idx[i : i + 8], "little") for i in range(0, len(idx), 8)]
    assert entries == [0, 2 * CHECKPOINT, 4 * CHECKPOINT, len(text.encode("utf-8"))]


@pytest.mark.parametrize("alphabet", ["abc xyz\n", NON_ASCII])
def test_reader_slices_equal_str_slices(tmp_path: Path, alphabet: str) -> None:
    rnd = random.Random(42)
    text = canonicalize("".join(rnd.choice(alphabet) for _ in range(3 * CHECKPOINT + 123)))
    reader = _store(tmp_path, text)
    try:
        assert len(reader) == len(text)
        n = len(text)
        edges = [0, 1, CHECKPOINT - 1, CHECKPOINT, CHECKPOINT + 1, 2 * CHECKPOINT, n - 1, n]
        for a in edges:
            for b in edges:
                assert reader[a:b] == text[a:b], (a, b)
        for _ in range(300):
            a, b = rnd.randint(-n - 5, n + 5), rnd.randint(-n - 5, n + 5)
            assert reader[a:b] == text[a:b], (a, b)
            assert reader.read(a, b) == text[a:b], (a, b)
        for i in (0, CHECKPOINT - 1, CHECKPOINT, n - 1, -1, -n):
            assert reader[i] == text[i]
        assert reader[::2] == text[::2]
        with pytest.raises(IndexError):
            reader[n]
    finally:
        reader.close()


def test_reader_empty_and_exact_checkpoint_multiple(tmp_path: Path) -> None:
    empty = _store(tmp_path, "", "empty")
    assert len(empty) == 0 and empty[0:10] == "" and list(empty.iter_blocks()) == []
    empty.close()
    text = "Ω" * (2 * CHECKPOINT)
    reader = _store(tmp_path, text, "exact")
    assert reader[CHECKPOINT - 1 : 2 * CHECKPOINT] == text[CHECKPOINT - 1 :]
    assert reader[2 * CHECKPOINT - 1] == "Ω"
    reader.close()


def test_reader_needs_index_for_non_ascii(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_bytes("é".encode())
    with pytest.raises(ValueError, match="offset index"):
        TextReader(tmp_path / "x.txt", 1)


@pytest.mark.parametrize("alphabet", ["word word\n", NON_ASCII])
def test_iter_blocks_covers_the_text(tmp_path: Path, alphabet: str) -> None:
    rnd = random.Random(3)
    text = canonicalize("".join(rnd.choice(alphabet) for _ in range(5 * CHECKPOINT)))
    reader = _store(tmp_path, text)
    blocks = list(reader.iter_blocks(block_chars=1000))
    assert "".join(b for _, b in blocks) == text
    pos = 0
    for offset, block in blocks:
        assert offset == pos and text[offset : offset + len(block)] == block
        pos += len(block)
    # blocks end at a newline when one is in their second half
    for _, block in blocks[:-1]:
        if "\n" in block[len(block) // 2 :] or len(block) < 1000:
            assert block.endswith("\n")
    reader.close()
