"""HTML extraction on real manuals: visible-text recall, inline-code retention, one line per
paragraph, and MB/s, for each candidate extractor (docs/parsing.md has the figures).

Usage::

    .venv/bin/python benchmarks/html_extract.py DIR [DIR ...] [--limit N] [--extra PATH]

``DIR``: folders searched for ``*.html``/``*.htm`` (e.g. Debian doc packages unpacked with
``dpkg -x``). ``--extra``: a folder appended to ``sys.path`` holding optional candidates
(``inscriptis``, ``html_text``), installed there with ``uv pip install --target``; they are
skipped when absent.

Reference: every text node of the page's main element (``htmldoc.main_element``) minus
scripts, styles, ``nav``/``header``/``footer``/``aside`` and generator navigation blocks
(``htmldoc.BOILERPLATE_CLASSES``). *Recall*: the share of the reference's words (``\\w+``,
counted with multiplicity) found in the output. *Inline code*: the share of ``<code>``,
``<var>``, ``<kbd>``, ``<samp>``, ``<tt>`` texts outside ``<pre>`` found (whitespace
normalised) in the output. *One line*: the share of ``<p>``, ``<li>``, ``<dt>``, ``<h1-6>``
without nested blocks whose text is within a single output line.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lxml.html

from rlmx.corpus.parsers.htmldoc import BOILERPLATE_CLASSES, doc_text, main_element

__all__ = ["CANDIDATES", "main", "measure", "reference"]

_WORD = re.compile(r"\w+")
_WS = re.compile(r"\s+")
_INLINE = ("code", "var", "kbd", "samp", "tt")
_LINE_TAGS = ("p", "li", "dt", "h1", "h2", "h3", "h4", "h5", "h6")
_NESTED = ("p", "div", "ul", "ol", "dl", "table", "pre", "li", "br", "blockquote")


def _norm(s: str) -> str:
    return _WS.sub(" ", s).strip()


def _is_boiler(el: Any) -> bool:
    names = [*(el.get("class") or "").lower().split(), (el.get("id") or "").lower()]
    return el.tag in ("nav", "header", "footer", "aside") or any(n in BOILERPLATE_CLASSES for n in names)


def reference(html: str) -> tuple[Counter[str], list[str], list[str]]:
    """(words, inline-code texts, single-line block texts) of the page's main content."""
    root = lxml.html.document_fromstring(html)
    main = main_element(root)
    for el in list(main.iter("script", "style", "noscript", "template", "svg")):
        el.drop_tree()
    for el in list(main.iter()):
        if isinstance(el.tag, str) and el.getparent() is not None and _is_boiler(el):
            el.drop_tree()
    words = Counter(_WORD.findall(" ".join(main.itertext())))
    codes = [
        t
        for el in main.iter(*_INLINE)
        if not any(a.tag == "pre" for a in el.iterancestors()) and (t := _norm(el.text_content()))
    ]
    lines = [
        t
        for el in main.iter(*_LINE_TAGS)
        if not any(c is not el for c in el.iter(*_NESTED))
        if (t := _norm(el.text_content())) and len(t) > 3
    ]
    return words, codes, lines


def _trafilatura_plain(html: str) -> str:
    import trafilatura

    return trafilatura.extract(html, include_comments=False, include_tables=True) or ""


def _trafilatura_recall(html: str) -> str:
    import trafilatura

    out = trafilatura.extract(
        html,
        include_comments=False,
        include_tables=True,
        include_formatting=True,
        favor_recall=True,
        output_format="markdown",
    )
    return out or ""


def _inscriptis(html: str) -> str:
    from inscriptis import get_text

    return str(get_text(html))


def _html_text(html: str) -> str:
    import html_text

    return str(html_text.extract_text(html, guess_layout=True))


CANDIDATES: dict[str, Callable[[str], str]] = {
    "trafilatura (parser until v1)": _trafilatura_plain,
    "trafilatura favor_recall+formatting, markdown": _trafilatura_recall,
    "htmldoc (lxml, this parser)": lambda html: doc_text(html)[0],
    "inscriptis (whole page)": _inscriptis,
    "html-text (whole page)": _html_text,
}


def measure(pages: list[str], extract: Callable[[str], str]) -> dict[str, float]:
    """Recall, inline-code retention, one-line share (all in [0, 1]) and MB/s."""
    found = total = codes_found = codes_total = lines_found = lines_total = 0
    nbytes = sum(len(p.encode()) for p in pages)
    outputs: list[str] = []
    t0 = time.perf_counter()
    for page in pages:
        outputs.append(extract(page))
    elapsed = time.perf_counter() - t0
    for page, out in zip(pages, outputs, strict=True):
        ref_words, codes, lines = reference(page)
        got = Counter(_WORD.findall(out))
        found += sum(min(n, got[w]) for w, n in ref_words.items())
        total += sum(ref_words.values())
        flat = _norm(out)
        codes_found += sum(1 for c in codes if c in flat)
        codes_total += len(codes)
        out_lines = [_norm(line) for line in out.split("\n")]
        lines_total += len(lines)
        lines_found += sum(1 for t in lines if any(t in ol for ol in out_lines))
    return {
        "recall": found / max(total, 1),
        "inline_code": codes_found / max(codes_total, 1),
        "one_line": lines_found / max(lines_total, 1),
        "mb_s": nbytes / 1e6 / max(elapsed, 1e-9),
        "pages": len(pages),
        "mb": nbytes / 1e6,
    }


def main(argv: list[str] | None = None) -> None:
    """Measure every available candidate on the pages under the given folders."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--limit", type=int, default=200, help="pages per folder (default 200)")
    ap.add_argument("--extra", type=Path, help="folder appended to sys.path")
    args = ap.parse_args(argv)
    if args.extra:
        sys.path.append(str(args.extra))
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    for folder in args.dirs:
        files = sorted(p for p in folder.rglob("*") if p.suffix in (".html", ".htm"))
        pages = [p.read_bytes().decode("utf-8", "replace") for p in files[: args.limit]]
        print(f"\n{folder} ({len(pages)} pages, {sum(map(len, pages)) / 1e6:.2f} MB)")
        print(f"{'extractor':48} recall  inline  1-line   MB/s")
        for name, fn in CANDIDATES.items():
            try:
                r = measure(pages, fn)
            except ImportError:
                print(f"{name:48} (not installed)")
                continue
            print(f"{name:48} {r['recall']:6.1%} {r['inline_code']:6.1%} {r['one_line']:6.1%} {r['mb_s']:6.2f}")


if __name__ == "__main__":
    main()
