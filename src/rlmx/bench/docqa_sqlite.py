"""``docqa`` questions over the SQLite documentation (Debian ``sqlite3-doc``), extracted from
the structure of its pages as rlmx parses them (the canonical text of the HTML):

* ``result-code`` — the numeric value of a result code (``rescode.html``: ``- SQLITE_BUSY (5)``);
* ``c-return-type`` — the return type of a C function (a ``c3ref/*.html`` page's declaration
  ``const char *sqlite3_libversion(void);``; types other than ``int`` and ``void``);
* ``c-page-title`` — the title of the C-interface page that declares a function;
* ``count-keywords`` (aggregation) — how many keywords of ``lang_keywords.html`` begin
  with a letter;
* ``count-extended-codes`` (aggregation) — how many extended result codes belong to a
  primary result code (``SQLITE_IOERR_*``);
* ``count-deprecated-pragmas`` (aggregation) — how many pragmas of ``pragma.html``'s
  list carry note 1 (deprecated).
"""

from __future__ import annotations

import re
from collections import Counter

from .docqa_base import Doc, Question, evidence, line_runs, lines_with_offsets

__all__ = ["KINDS", "detect", "questions"]

KINDS = (
    "result-code",
    "c-return-type",
    "c-page-title",
    "count-keywords",
    "result-code",
    "c-return-type",
    "c-page-title",
    "count-extended-codes",
    "count-deprecated-pragmas",
)
"""The kind of task ``i`` is ``KINDS[i % len(KINDS)]`` (another one when that is used up)."""

_FORMAT = " Give only the value, in the form 'Answer: VALUE'."
_CODE = re.compile(r"^- (SQLITE_[A-Z0-9_]+) \((\d+)\)$")
_KEYWORD = re.compile(r"^- ([A-Z][A-Z_]*)$")
_PRAGMA = re.compile(r"^- ([a-z_]+)([¹²³]?)$")
_DECL = re.compile(r"^([A-Za-z_][\w \t*]*?)\s*\b(sqlite3_\w+)\s*\(.*\);$")


def _page(docs: list[Doc], base: str) -> Doc | None:
    found = [d for d in docs if d.name == base or d.name.endswith("/" + base)]
    return min(found, key=lambda d: len(d.name)) if found else None


def detect(docs: list[Doc]) -> bool:
    """True for a folder holding the SQLite documentation's ``rescode.html`` and ``c3ref/``."""
    return _page(docs, "rescode.html") is not None and any("c3ref/" in d.name for d in docs)


def _blocks(doc: Doc, pattern: re.Pattern[str]) -> list[list[int]]:
    """Runs of consecutive line indices of ``doc`` matching ``pattern``."""
    lines = lines_with_offsets(doc.text)
    runs: list[list[int]] = []
    for i, (_, line) in enumerate(lines):
        if pattern.match(line):
            if runs and runs[-1][-1] == i - 1:
                runs[-1].append(i)
            else:
                runs.append([i])
    return runs


def _result_codes(doc: Doc) -> list[Question]:
    lines = lines_with_offsets(doc.text)
    blocks = [b for b in _blocks(doc, _CODE) if len(b) >= 5]
    out: list[Question] = []
    for i in (j for b in blocks for j in b):
        start, line = lines[i]
        m = _CODE.match(line)
        assert m is not None
        out.append(
            Question(
                "result-code",
                f"In the SQLite documentation, what is the numeric value of the result code {m.group(1)}?" + _FORMAT,
                m.group(2),
                [m.group(2)],
                [evidence(doc, start + 2, start + len(line))],
                params={"code": m.group(1)},
            )
        )
    if len(blocks) >= 2:  # the primary list, then the extended list
        primary = [_CODE.match(lines[i][1]).group(1) for i in blocks[0]]  # type: ignore[union-attr]
        extended = blocks[1]
        for p in primary:
            mine = [i for i in extended if lines[i][1].startswith(f"- {p}_")]
            if len(mine) < 2:
                continue
            out.append(
                Question(
                    "count-extended-codes",
                    f"How many extended result codes does the SQLite documentation's Extended Result Code List give "
                    f"for the primary result code {p} (names starting with {p}_)?" + _FORMAT,
                    str(len(mine)),
                    [str(len(mine))],
                    [evidence(doc, s, e) for s, e in line_runs(lines, mine)],
                    aggregation=True,
                    params={"code": p},
                )
            )
    return out


def _keywords(doc: Doc) -> list[Question]:
    lines = lines_with_offsets(doc.text)
    blocks = _blocks(doc, _KEYWORD)
    if not blocks:
        return []
    block = max(blocks, key=len)
    by_letter: dict[str, list[int]] = {}
    for i in block:
        by_letter.setdefault(lines[i][1][2], []).append(i)
    out = []
    for letter, mine in sorted(by_letter.items()):
        if len(mine) < 2:
            continue
        out.append(
            Question(
                "count-keywords",
                f"How many of the keywords listed on the SQLite Keywords page begin with the letter {letter}?"
                + _FORMAT,
                str(len(mine)),
                [str(len(mine))],
                [evidence(doc, s, e) for s, e in line_runs(lines, mine)],
                aggregation=True,
                params={"letter": letter, "keywords": len(block)},
            )
        )
    return out


def _pragmas(doc: Doc) -> list[Question]:
    lines = lines_with_offsets(doc.text)
    blocks = _blocks(doc, _PRAGMA)
    if not blocks:
        return []
    block = max(blocks, key=len)
    marked = [i for i in block if lines[i][1].endswith("¹")]
    if not marked:
        return []
    start, end = lines[block[0]][0], lines[block[-1]][0] + len(lines[block[-1]][1])
    return [
        Question(
            "count-deprecated-pragmas",
            "How many pragmas of the List Of PRAGMAs in the SQLite documentation carry note 1 (marked ¹: deprecated)?"
            + _FORMAT,
            str(len(marked)),
            [str(len(marked))],
            [evidence(doc, start, end)],
            aggregation=True,
            params={"pragmas": len(block)},
        )
    ]


def _c_interface(docs: list[Doc]) -> list[Question]:
    found: list[tuple[Doc, str, int, int, int, str, str]] = []  # doc, title, t0, d0, d1, fn, ret
    for doc in docs:
        if "c3ref/" not in doc.name:
            continue
        lines = lines_with_offsets(doc.text)
        k = next((i for i, (_, ln) in enumerate(lines) if ln == "SQLite C Interface"), None)
        if k is None or k + 1 >= len(lines) or not lines[k + 1][1].strip():
            continue
        t0, title = lines[k + 1]
        for start, line in lines[k + 2 : k + 40]:
            m = _DECL.match(line)
            if m:
                found.append((doc, title.strip(), t0, start, start + len(line), m.group(2), m.group(1).strip()))
    once = Counter(f[5] for f in found)
    out: list[Question] = []
    for doc, title, t0, d0, d1, fn, ret in found:
        if once[fn] != 1:
            continue
        if ret not in ("int", "void"):
            forms = sorted({ret, ret.replace(" *", "*"), ret.replace("*", " *").replace("  ", " ")})
            out.append(
                Question(
                    "c-return-type",
                    f"In the SQLite C interface, what is the return type of the function {fn}()?" + _FORMAT,
                    ret,
                    forms,
                    [evidence(doc, d0, d1)],
                    params={"function": fn},
                )
            )
        out.append(
            Question(
                "c-page-title",
                f"What is the title of the SQLite C-interface documentation page that declares {fn}()?" + _FORMAT,
                title,
                [title],
                [evidence(doc, t0, d1)],
                params={"function": fn},
            )
        )
    return out


def questions(docs: list[Doc]) -> list[Question]:
    """Every question the SQLite documentation in ``docs`` supports, in a fixed order."""
    out: list[Question] = []
    for base, make in (("rescode.html", _result_codes), ("lang_keywords.html", _keywords), ("pragma.html", _pragmas)):
        page = _page(docs, base)
        if page is not None:
            out += make(page)
    return out + _c_interface(docs)
