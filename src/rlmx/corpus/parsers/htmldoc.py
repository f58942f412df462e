"""Faithful text of an HTML page's main content (lxml), for documentation pages.

Every visible word of the main element is kept, inline ``<code>``, ``<var>``, ``<kbd>``
and the like included, in document order. Navigation, page headers and footers, sidebars,
scripts and styles go. Layout of the result:

* a paragraph, list item (``"- "`` prefix), heading, definition term or definition is one
  line with single spaces (the source file's indentation and wrapping are removed);
* a ``<pre>`` block keeps its own lines (trailing spaces removed);
* a table row is one line, its cells separated by ``" | "``;
* ``<br>`` ends a line.

The main element is ``<main>``, else the element with ``role="main"``, else the page's only
``<article>``, else ``<body>``. Dropped: ``nav``, ``aside``, page-level ``header`` and
``footer`` (those not inside ``article``/``section``/``main``), ARIA navigation, banner,
contentinfo, complementary and search landmarks, hidden elements, and elements whose class
or id names a navigation block of a common documentation generator (DocBook
``navheader``/``navfooter``, Texinfo ``nav-panel``/``header``, Sphinx ``related``/
``sphinxsidebar``/``footer``/``headerlink``, ...).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["BOILERPLATE_CLASSES", "CELL_SEPARATOR", "doc_text", "main_element", "render"]

CELL_SEPARATOR = " | "
# fmt: off
BOILERPLATE_CLASSES = frozenset({
    "navheader", "navfooter", "nav-panel", "navigation", "navbar", "nav", "breadcrumb",
    "breadcrumbs", "related", "sphinxsidebar", "sidebar", "footer", "header", "headerlink",
    "menu", "searchmenu", "skip-link", "skiplink", "toc-backref",
})
_BLOCKS = frozenset({
    "address", "article", "blockquote", "body", "caption", "center", "dd", "details", "dialog",
    "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure", "form", "h1", "h2", "h3",
    "h4", "h5", "h6", "hgroup", "hr", "html", "legend", "li", "listing", "main", "menu", "ol",
    "p", "plaintext", "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "ul", "xmp",
})
# fmt: on
_DROP = frozenset({"script", "style", "noscript", "template", "svg", "head", "nav", "aside", "iframe"})
_DROP_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
_SECTIONING = frozenset({"article", "section", "main"})
_PRE = frozenset({"pre", "listing", "xmp", "plaintext"})
_WS = re.compile(r"\s+")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


def _tag(el: Any) -> str | None:
    tag = el.tag
    return tag.lower() if isinstance(tag, str) else None


def _boilerplate(el: Any, tag: str) -> bool:
    if tag in _DROP:
        return True
    get = el.get
    if get("hidden") is not None or get("aria-hidden") == "true":
        return True
    if (role := get("role")) and role.strip().lower() in _DROP_ROLES:
        return True
    if (style := get("style")) and _HIDDEN_STYLE.search(style):
        return True
    names = (get("class") or "").lower().split()
    if (ident := get("id")) is not None:
        names.append(ident.lower())
    if any(n in BOILERPLATE_CLASSES for n in names):
        return True
    if tag in ("header", "footer"):
        return not any(_tag(a) in _SECTIONING for a in el.iterancestors())
    return False


class _Renderer:
    """Walks an element tree and collects its visible text as lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._buf: list[str] = []
        self._prefix = ""

    def flush(self) -> None:
        line = _WS.sub(" ", "".join(self._buf)).strip()
        self._buf = []
        if line:
            self.lines.append(self._prefix + line)
            self._prefix = ""

    def _add(self, text: str | None) -> None:
        if text:
            self._buf.append(text)

    def walk(self, el: Any) -> None:
        tag = _tag(el)
        if tag is None or _boilerplate(el, tag):
            return  # comments, processing instructions, boilerplate (the tail is the caller's)
        if tag in _PRE:
            self.flush()
            self._pre(el)
            return
        if tag == "br":
            self.flush()
            return
        if tag == "tr":
            self.flush()
            self._row(el)
            return
        block = tag in _BLOCKS
        if block:
            self.flush()
        if tag == "li":
            self._prefix = "- "
        self._add(el.text)
        for child in el:
            self.walk(child)
            self._add(child.tail)
        if block:
            self.flush()
        if tag == "li":
            self._prefix = ""

    def _pre(self, el: Any) -> None:
        text = el.text_content().replace("\r\n", "\n").replace("\xa0", " ")
        lines = [line.rstrip() for line in text.split("\n")]
        while lines and not lines[0]:
            lines.pop(0)
        while lines and not lines[-1]:
            lines.pop()
        if lines:
            self.lines.append(self._prefix + lines[0])
            self._prefix = ""
            self.lines.extend(lines[1:])

    def _row(self, tr: Any) -> None:
        cells: list[str] = []
        for cell in tr:
            tag = _tag(cell)
            if tag not in ("td", "th") or _boilerplate(cell, tag):
                continue
            sub = _Renderer()
            sub._add(cell.text)
            for child in cell:
                sub.walk(child)
                sub._add(child.tail)
            sub.flush()
            cells.append(" ".join(sub.lines))
        if any(cells):
            self.lines.append(self._prefix + CELL_SEPARATOR.join(cells).strip())
            self._prefix = ""


def main_element(root: Any) -> Any:
    """The element holding the page's main content (see the module docstring)."""
    for path in ("//main", "//*[@role='main']"):
        found = root.xpath(path)
        if found:
            return found[0]
    articles = root.xpath("//article")
    if len(articles) == 1:
        return articles[0]
    body = root.find("body")
    return body if body is not None else root


def render(el: Any) -> str:
    """The visible text of ``el`` laid out as described in the module docstring."""
    r = _Renderer()
    r.walk(el)
    r.flush()
    return "\n".join(r.lines)


def doc_text(html: str) -> tuple[str, str | None]:
    """``(text, title)`` of an HTML page: its main content's faithful text and its
    ``<title>``; ``("", None)`` when lxml cannot parse it at all."""
    import lxml.html

    try:
        root = lxml.html.document_fromstring(html)
    except Exception:  # lxml raises several types on hopeless input
        return "", None
    title_el = root.find(".//title")
    title = _WS.sub(" ", title_el.text_content()).strip() if title_el is not None else ""
    main = main_element(root)
    text = render(main)
    if not text and main is not root:
        body = root.find("body")
        text = render(body if body is not None else root)
    return text, title or None
