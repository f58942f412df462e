"""DOCX (Word 2007+): paragraphs and tables in document order (python-docx).

Each paragraph is a line; a table becomes one line per row with cells separated by tabs,
followed by a blank line. ``meta``: ``title`` (core properties, else the first Title or
Heading 1 paragraph), ``headings`` (``{"level", "text", "start"}``, code-point offsets in
the canonical text), ``tables`` (count). Legacy ``.doc`` files are not supported.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlmx.corpus.canonical import canonicalize
from rlmx.corpus.parsers.base import ParsedText, ParseError, Parser, dist_version
from rlmx.corpus.parsers.markup import MAX_HEADINGS

if TYPE_CHECKING:
    from docx.table import Table

__all__ = ["DocxParser"]

_HEADING = re.compile(r"^Heading (\d)$")


def _table_lines(table: Table) -> list[str]:
    lines = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            value = " ".join(cell.text.split())
            if not cells or cells[-1] != value:  # merged cells repeat their text
                cells.append(value)
        lines.append("\t".join(cells))
    return lines


class DocxParser(Parser):
    """Word documents (``.docx``) via python-docx."""

    name = "docx"
    version = f"1+python-docx-{dist_version('python-docx')}"
    media_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

    def _fail(self, reason: str) -> ParseError:
        return ParseError(reason, media_type=self.media_type)

    def parse(self, data: bytes, path: Path) -> ParsedText:
        import docx  # imported on first use: it is slow to import
        from docx.opc.exceptions import PackageNotFoundError
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        if not data:
            raise self._fail("empty file (0 bytes)")
        if not data.startswith(b"PK"):
            raise self._fail("corrupt DOCX: not a ZIP package (legacy .doc? save it as .docx)")
        try:
            document = docx.Document(io.BytesIO(data))
        except (
            PackageNotFoundError,
            zipfile.BadZipFile,
            KeyError,
            ValueError,
            OSError,
            AttributeError,
            TypeError,
        ) as e:
            raise self._fail(f"corrupt DOCX: {type(e).__name__}: {e}") from e
        except Exception as e:  # lxml XMLSyntaxError and friends
            raise self._fail(f"corrupt DOCX: {type(e).__name__}: {e}") from e

        parts: list[str] = []
        pos = 0
        headings: list[dict[str, Any]] = []
        title: str | None = None
        n_tables = 0

        def emit(line: str) -> None:
            nonlocal pos
            parts.append(line)
            pos += len(line) + 1

        try:
            for block in document.iter_inner_content():
                if isinstance(block, Paragraph):
                    line = canonicalize(block.text).replace("\n", " ")
                    style = block.style.name if block.style is not None else ""
                    m = _HEADING.match(style or "")
                    if (m or style == "Title") and line.strip():
                        level = int(m.group(1)) if m else 0
                        if len(headings) < MAX_HEADINGS:
                            headings.append({"level": level, "text": line.strip(), "start": pos})
                        if title is None and level <= 1:
                            title = line.strip()
                    emit(line)
                elif isinstance(block, Table):
                    n_tables += 1
                    for row in _table_lines(block):
                        emit(canonicalize(row).replace("\n", " "))
                    emit("")
            core_title = document.core_properties.title
        except Exception as e:  # malformed XML inside a valid ZIP
            raise self._fail(f"corrupt DOCX: {type(e).__name__}: {e}") from e
        text = "\n".join(parts)
        if not text.strip():
            raise self._fail("no text: the DOCX document is empty")
        meta: dict[str, Any] = {"headings": headings, "tables": n_tables}
        if core_title or title:
            meta["title"] = core_title or title
        return ParsedText(text, self.media_type, None, meta)
