"""HTML: the page's main content as text, not its markup (:mod:`.htmldoc`, lxml).

All visible text of the main element is kept, inline ``<code>``/``<var>``/``<kbd>``
included; a paragraph, list item or heading is one line with single spaces, ``<pre>``
blocks keep their lines, a table row is one line with cells separated by ``" | "``.
Navigation, page headers and footers, sidebars, scripts and styles are dropped. When the
main element has no text but the page has, a plain extraction of all visible text is used
instead (``meta["extractor"]`` says which). ``meta["title"]``: the page's ``<title>``.

Until version 1 this parser used trafilatura, which dropped inline code and kept the
source file's line breaks (docs/parsing.md has the measurements behind the change).
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any

from rlmx.corpus.parsers.base import ParsedText, ParseError, Parser, dist_version
from rlmx.corpus.parsers.encoding import codec_label
from rlmx.corpus.parsers.htmldoc import doc_text
from rlmx.corpus.parsers.text import decode_checked

__all__ = ["HtmlParser", "plain_html_text"]

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)""", re.I)
_DROP = ("script", "style", "noscript", "template", "svg")
# fmt: off
_BLOCKS = (
    "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote",
    "section", "article", "header", "footer", "table", "ul", "ol", "dd", "dt", "td", "th",
)
# fmt: on
_BLOCK_SPACES = re.compile(r"[ \t\r\f\v\xa0]+")


def _decode_html(data: bytes, path: Path) -> tuple[str, str]:
    """Decode with the ``<meta charset>`` declaration when it is right, else detect."""
    m = _META_CHARSET.search(data[:4096])
    if m and not data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            enc = codec_label(m.group(1).decode("ascii"))
            if enc in ("iso-8859-1", "ascii") and re.search(rb"[\x80-\x9f]", data):
                enc = "cp1252"  # as browsers do (WHATWG encoding standard)
            text = data.decode(enc)
            if text.strip():
                return text, enc
        except (LookupError, UnicodeDecodeError):
            pass
    return decode_checked(data, path, "text/html")


def plain_html_text(html: str) -> tuple[str, str | None]:
    """All visible text of ``html`` (one line per block, blank lines removed) and the
    ``<title>``; used when main-content extraction finds nothing."""
    import lxml.html

    try:
        root = lxml.html.document_fromstring(html)
    except Exception:  # lxml raises several types on hopeless input
        return "", None
    title_el = root.find(".//title")
    title = title_el.text_content().strip() if title_el is not None else None
    for el in list(root.iter(*_DROP)):
        if el.getparent() is not None:
            el.drop_tree()
    for el in root.iter(*_BLOCKS):
        el.tail = "\n" + (el.tail or "")
    body = root.find("body")
    target = body if body is not None else root
    lines = []
    for line in target.text_content().split("\n"):
        line = _BLOCK_SPACES.sub(" ", line).strip()
        if line:
            lines.append(line)
    return "\n".join(lines), title or None


class HtmlParser(Parser):
    """HTML pages (``.html``, ``.htm``, ``.xhtml``). ``meta``: ``title`` (when found),
    ``extractor`` (``"htmldoc"`` or ``"plain"``).

    ``version`` names the extractor and the lxml version: a different parser version gives
    re-parsed documents new ids (their checksums can change), so stored ones stay true."""

    name = "html"
    version = f"2+htmldoc-lxml-{dist_version('lxml')}"
    media_type = "text/html"

    def parse(self, data: bytes, path: Path) -> ParsedText:
        html, encoding = _decode_html(data, path)
        meta: dict[str, Any] = {}
        try:
            text, title = doc_text(html)
        except RecursionError:  # absurdly deep nesting: the flat extraction below copes
            text, title = "", None
        meta["extractor"] = "htmldoc"
        if not text:
            text, page_title = plain_html_text(html)
            title = title or page_title
            meta["extractor"] = "plain"
        if title:
            meta["title"] = title
        if not text.strip():
            raise ParseError("no text: the HTML page has no visible text", media_type=self.media_type)
        return ParsedText(text, self.media_type, encoding, meta)
