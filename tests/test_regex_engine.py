"""context.grep through RE2 (issue 10 item 4): the same hits and the same code-point offsets
as Python ``re``, on non-ASCII text with the case-folding corner cases, and the documented
choice of path per pattern; RE2 imports inside the sandboxed REPL."""

from __future__ import annotations

import asyncio
import random
import re
from pathlib import Path
from typing import Any

import pytest
import re2

from rlmx.corpus.canonical import TextReader, build_offset_index
from rlmx.sandbox import ContextSpec, SandboxPolicy, ToolRequest, make_repl, regex_engine, regex_translate
from rlmx.sandbox.context import ContextView, open_context
from rlmx.sandbox.spanlog import SpanLog
from rlmx.sandbox.testing import spec_from_texts

# what Python's re.IGNORECASE folds beyond ASCII: dotted/dotless i, long s, Kelvin, sharp s,
# the sigmas, titlecase digraphs; Unicode digits and spaces for \d and \s
ALPHABET = [*"ab AB\nkKsS09-_.é", "É", "İ", "ı", "ſ", "K", "ß", "ẞ", "Σ", "σ", "ς", "٣", "\u2003", "\xa0", "ǅ"]
WORDS = ["ab-c", "AB-ΣK-", "needle-123456", "NEEDLE-654321", "NeEdLe-٣٣٣٣٣٣", "KELVIN", "ſtraße", "ΣΑΣ σας", "abc"]
RE2_PATTERNS = [
    r"(?i)needle-\d{6}",
    r"\d{3,}",
    r"(?i)k",
    r"(?i)s+",
    r"(?i)[a-k]+s",
    r"(?i)σ",
    r"(?i)straße",
    r"(?i)i",
    r"\w+-\d+",
    r"\s\S+",
    r"[^\W\d]+",
    r"(?m)^\w+",
    r"(?m)\w+$",
    r"(?i)(ab|kk)\b",
    r"(?<=-)\d+",
    r"(?i)[^a-z\s]+",
    r"(?s)a.{0,5}b",
    r"a.*?b",
    r"(?i)ǅ",
    r"(?a)\w+",
    r"\D{3}",
    r"(?i)[é-ê]+",
    r"x{150}|ab",
    r"(?x) a  b # c",
    r"(?i)ab-\w",  # the anchor byte: "-" two characters after the start
    r"(?i)k.-",
    r"(?i)(?:σ|ς)[a-z]_?\d",
    r"[a-k]+-\w",  # the inner byte: "-" after a part of variable width (a backward run scan)
    r"(?i)[a-z]+-\d+",
    r"[^\s]+-",
    r"(?:ab|k)+_\w",
    r"\S*?-\S",
    r"é+\.\w",
]
PYTHON_ONLY = [r"^abc", r"abc$", r"\Aabc", r"abc\Z", r"a*", r"(\w)\1", r"a(?=b)", r"(a)?(?(1)b|c)"]


def _text(n: int, seed: int) -> str:
    rnd = random.Random(seed)
    parts: list[str] = []
    while sum(map(len, parts)) < n:
        parts.append("".join(rnd.choice(ALPHABET) for _ in range(rnd.randrange(0, 30))))
        parts.append(rnd.choice(WORDS))
    return "".join(parts)


def _reader(tmp_path: Path, text: str) -> TextReader:
    (tmp_path / "t.txt").write_bytes(text.encode("utf-8"))
    idx = build_offset_index(text)
    if idx is not None:
        (tmp_path / "t.idx").write_bytes(idx)
    return TextReader(tmp_path / "t.txt", len(text), tmp_path / "t.idx" if idx else None)


def test_re2_is_installed() -> None:
    assert regex_engine.re2_available(), "google-re2 is a dependency: run `python3 -m uv sync`"


@pytest.mark.parametrize("seed", [3, 11])
def test_re2_candidates_give_exactly_the_hits_of_python_re(tmp_path: Path, seed: int) -> None:
    text = _text(20_000, seed)
    reader = _reader(tmp_path, text)
    for pattern in RE2_PATTERNS:
        regex = re.compile(pattern)
        finder = regex_engine.compile_candidates(regex)
        assert finder is not None, pattern
        for lo, hi in [(0, len(text)), (17, len(text) - 33), (len(text) // 3, len(text) // 2)]:
            want = [(m.start() + lo, m.end() + lo) for m in regex.finditer(text[lo:hi]) if m.end() > m.start()]
            got = list(regex_engine.grep_candidates(reader, reader.read, regex, finder, lo, hi, 10**6, overlap=256))
            assert got == want, (pattern, lo, hi)
        first3 = [(m.start(), m.end()) for m in regex.finditer(text) if m.end() > m.start()][:3]
        assert list(regex_engine.grep_candidates(reader, reader.read, regex, finder, 0, len(text), 3)) == first3


def test_ignorecase_classes_hold_what_python_folds() -> None:
    for pattern, chars in [(r"(?i)k", "kKK"), (r"(?i)s", "sSſ"), (r"(?i)i", "iIİı"), (r"(?i)σ", "σςΣ")]:
        re2_pattern = regex_translate.candidate_pattern(re.compile(pattern))
        assert re2_pattern is not None
        candidates = re2.compile(re2_pattern)
        for ch in chars:
            assert re.fullmatch(pattern, ch), (pattern, ch)
            assert candidates.fullmatch(ch), (pattern, ch, re2_pattern)
        assert not candidates.fullmatch("x")


def test_a_case_invariant_byte_at_a_fixed_offset_anchors_the_search() -> None:
    found = regex_engine.compile_candidates(re.compile(r"(?i)needle-\d{6}"))
    assert found is not None and found.anchor is not None
    assert found.anchor[:3] == (b"-", 6, 24)  # 6 characters: 6 to 24 bytes of UTF-8
    for pattern in [r"(?i)needle", r"(?i)\w+-\d", r"(?i)(?m)^ab-"]:  # no such byte, or not at a fixed offset
        found = regex_engine.compile_candidates(re.compile(pattern))
        assert found is not None and found.anchor is None, pattern


def test_a_case_invariant_byte_after_a_variable_part_anchors_the_search(tmp_path: Path) -> None:
    found = regex_engine.compile_candidates(re.compile(r"[a-z]+-\d{6}"))
    assert found is not None and found.anchor is None and found.inner is not None
    byte, run, min_bytes, _ = found.inner
    assert (byte, min_bytes) == (b"-", 1) and set(run) == set(range(ord("a"), ord("z") + 1))
    wide = regex_engine.compile_candidates(re.compile(r"\w+-\d"))
    assert wide is not None and wide.inner is not None and set(range(128, 256)) <= set(wide.inner[1])
    # a run far longer than one backward step, and runs that hold no match
    text = "z" * 70_000 + "-123456 ab-12 " + "é" * 300 + "q-654321 -999999 x-1234567"
    reader = _reader(tmp_path, text)
    regex = re.compile(r"[a-z]+-\d{6}")
    want = [(m.start(), m.end()) for m in regex.finditer(text)]
    assert len(want) == 3 and want[0] == (0, 70_007)
    assert list(regex_engine.grep_candidates(reader, reader.read, regex, found, 0, len(text), 100)) == want


def test_patterns_re2_cannot_serve_take_the_python_path() -> None:
    for pattern in PYTHON_ONLY:
        assert regex_translate.candidate_pattern(re.compile(pattern)) is None, pattern
    assert regex_translate.candidate_pattern(re.compile(r"(?m)^abc$")) == r"(?m:^)\x{61}\x{62}\x{63}(?m:$)"


def test_context_grep_uses_re2_and_reports_code_point_offsets(tmp_path: Path) -> None:
    text = "Été à Paris — NEEDLE-000042 puis needle-٣٣٣٣٣٣ et Needle-7\n" * 50 + "ſtraße STRASSE\n"
    spec = spec_from_texts(tmp_path, {"fr.txt": text})
    ctx = open_context(spec.model_dump(), SpanLog(), None)
    assert isinstance(ctx, ContextView)
    doc = ctx.doc("fr.txt")
    for pattern in [r"(?i)needle-\d{6}", r"(?i)été", r"(?i)\w+aße", r"\d+"]:
        want = [(m.start(), m.end()) for m in re.finditer(pattern, str(doc))]
        assert [h.span for h in doc.grep(pattern, max_hits=10**6)] == want, pattern
        assert [h.text for h in doc.grep(pattern, max_hits=5)] == [str(doc)[s:e] for s, e in want[:5]]


async def _no_tools(req: ToolRequest) -> Any:
    raise AssertionError(f"unexpected tool request {req!r}")


def test_re2_grep_inside_the_sandboxed_repl(tmp_path: Path) -> None:
    text = "naïve café\n" * 1000 + "Ωmega NEEDLE-123456 ends\n"
    spec: ContextSpec = spec_from_texts(tmp_path, {"w.txt": text})

    async def go() -> str:
        async with make_repl(spec, policy=SandboxPolicy()) as repl:
            r = await repl.run(
                "from rlmx.sandbox import regex_engine as e\n"
                "h = context.grep(r'(?i)needle-\\d{6}')\n"
                "print(e.re2_available(), [x.span for x in h], h[0].text)",
                turn=1,
                resolver=_no_tools,
            )
            assert not r.error, r.error
            return r.stdout.strip()

    start = text.index("NEEDLE")
    assert asyncio.run(go()) == f"True [({start}, {start + 13})] NEEDLE-123456"
