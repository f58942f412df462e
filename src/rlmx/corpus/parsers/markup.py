"""Markdown and reStructuredText: the text is kept as source; the title and headings go
into ``meta``.

``meta["headings"]`` is a list of ``{"level": int, "text": str, "start": int}`` where
``start`` is the code-point offset of the heading's first line in the canonical text
(the parsers canonicalise, so these offsets are those of the stored text). At most
``MAX_HEADINGS`` headings are kept; ``meta["title"]`` is the front-matter title, else the
first level-1 heading, else the first heading.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlmx.corpus.canonical import canonicalize
from rlmx.corpus.parsers.base import ParsedText, Parser
from rlmx.corpus.parsers.text import decode_checked

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

__all__ = ["MAX_HEADINGS", "MarkdownParser", "RstParser", "line_starts"]

MAX_HEADINGS = 1000
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n(?:---|\.\.\.)\n", re.S)
_FM_TITLE = re.compile(r"^title:\s*(.+?)\s*$", re.M)


def line_starts(text: str) -> list[int]:
    """Offsets (code points) where each line of ``text`` starts; ``[0, ...]``."""
    starts = [0]
    pos = text.find("\n")
    while pos >= 0:
        starts.append(pos + 1)
        pos = text.find("\n", pos + 1)
    return starts


def _title(headings: list[dict[str, Any]]) -> str | None:
    for h in headings:
        if h["level"] == 1:
            return str(h["text"])
    return str(headings[0]["text"]) if headings else None


class MarkdownParser(Parser):
    """Markdown (``.md``, ``.markdown``), text kept as source; headings via markdown-it-py."""

    name = "markdown"
    version = "1"
    media_type = "text/markdown"

    def __init__(self) -> None:
        self._md: MarkdownIt | None = None

    def parse(self, data: bytes, path: Path) -> ParsedText:
        raw, encoding = decode_checked(data, path, self.media_type)
        text = canonicalize(raw)
        meta: dict[str, Any] = {}
        body_line = 0
        fm = _FRONT_MATTER.match(text)
        if fm:
            m = _FM_TITLE.search(fm.group(1))
            if m:
                meta["title"] = m.group(1).strip("'\"")
            body_line = text[: fm.end()].count("\n")
        starts = line_starts(text)
        body = "\n".join(text.split("\n")[body_line:]) if body_line else text
        headings: list[dict[str, Any]] = []
        if self._md is None:
            from markdown_it import MarkdownIt

            self._md = MarkdownIt("commonmark")
        tokens = self._md.parse(body)
        for i, tok in enumerate(tokens):
            if tok.type != "heading_open" or tok.map is None:
                continue
            inline = tokens[i + 1] if i + 1 < len(tokens) else None
            label = inline.content.strip() if inline is not None else ""
            line = tok.map[0] + body_line
            headings.append(
                {
                    "level": int(tok.tag[1:]),
                    "text": label,
                    "start": starts[min(line, len(starts) - 1)],
                }
            )
            if len(headings) >= MAX_HEADINGS:
                break
        meta["headings"] = headings
        if "title" not in meta and (title := _title(headings)):
            meta["title"] = title
        return ParsedText(text, self.media_type, encoding, meta)


_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1+\s*$")


class RstParser(Parser):
    """reStructuredText (``.rst``), text kept as source; section titles found by their
    underlines (and optional overlines), levels in order of first appearance."""

    name = "rst"
    version = "1"
    media_type = "text/x-rst"

    def parse(self, data: bytes, path: Path) -> ParsedText:
        raw, encoding = decode_checked(data, path, self.media_type)
        text = canonicalize(raw)
        lines = text.split("\n")
        starts = line_starts(text)
        styles: list[tuple[str, bool]] = []
        headings: list[dict[str, Any]] = []
        i = 0
        while i + 1 < len(lines) and len(headings) < MAX_HEADINGS:
            title, under = lines[i], lines[i + 1]
            m = _ADORNMENT.match(under)
            if (
                m
                and title.strip()
                and not _ADORNMENT.match(title)
                and len(under.rstrip()) >= len(title.strip())
                and (i == 0 or not lines[i - 1].strip() or _ADORNMENT.match(lines[i - 1]))
            ):
                over = i > 0 and lines[i - 1].rstrip() == under.rstrip()
                style = (m.group(1), over)
                if style not in styles:
                    styles.append(style)
                first = i - 1 if over else i
                headings.append(
                    {
                        "level": styles.index(style) + 1,
                        "text": title.strip(),
                        "start": starts[first],
                    }
                )
                i += 2
                continue
            i += 1
        meta: dict[str, Any] = {"headings": headings}
        if headings:
            meta["title"] = headings[0]["text"]
        return ParsedText(text, self.media_type, encoding, meta)
