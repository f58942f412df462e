"""PDF: the text layer of every page (pypdf), pages joined with a blank line.

``meta``: ``pages`` (page count), ``page_starts`` (code-point offset of each page in the
canonical text — the parser canonicalises each page, so the offsets are those of the
stored text), ``title`` (document info, when set) and ``page_errors`` (pages whose text
could not be extracted, 1-based). Encrypted PDFs that need a password, corrupt files and
PDFs without a text layer (scans) fail with their reason.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlmx.corpus.canonical import canonicalize
from rlmx.corpus.parsers.base import ParsedText, ParseError, Parser, dist_version

if TYPE_CHECKING:
    import pypdf

__all__ = ["PAGE_SEPARATOR", "PdfParser"]

PAGE_SEPARATOR = "\n\n"


class PdfParser(Parser):
    """PDF text via pypdf (``.pdf``)."""

    name = "pdf"
    version = f"1+pypdf-{dist_version('pypdf')}"
    media_type = "application/pdf"

    def _fail(self, reason: str) -> ParseError:
        return ParseError(reason, media_type=self.media_type)

    def _open(self, data: bytes) -> pypdf.PdfReader:
        import pypdf  # imported on first use: it is slow to import
        from pypdf.errors import PdfReadError

        if not data:
            raise self._fail("empty file (0 bytes)")
        if b"%PDF-" not in data[:1024]:
            raise self._fail("corrupt PDF: no '%PDF-' header")
        try:
            reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                try:
                    ok = reader.decrypt("")
                except Exception as e:  # missing crypto backend, unsupported algorithm
                    raise self._fail(f"encrypted PDF that cannot be opened ({e}); save an unencrypted copy") from e
                if not ok:
                    raise self._fail("encrypted PDF: a password is needed; save an unencrypted copy")
            _ = len(reader.pages)
        except ParseError:
            raise
        except (
            PdfReadError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            IndexError,
            RecursionError,
            OSError,
            AssertionError,
        ) as e:
            raise self._fail(f"corrupt PDF: {type(e).__name__}: {e}") from e
        return reader

    def parse(self, data: bytes, path: Path) -> ParsedText:
        logging.getLogger("pypdf").setLevel(logging.ERROR)
        reader = self._open(data)
        pages: list[str] = []
        errors: list[int] = []
        try:
            page_objs = list(reader.pages)
        except Exception as e:
            raise self._fail(f"corrupt PDF: cannot read its pages ({type(e).__name__}: {e})") from e
        for i, page in enumerate(page_objs, start=1):
            try:
                pages.append(canonicalize(page.extract_text() or "").strip("\n"))
            except Exception:  # one broken page must not lose the others
                errors.append(i)
                pages.append("")
        if not page_objs:
            raise self._fail("corrupt PDF: it has no pages")
        if errors and len(errors) == len(page_objs):
            raise self._fail("corrupt PDF: no page's text could be extracted")
        if not any(p.strip() for p in pages):
            raise self._fail("PDF has no text layer (scanned images?); run OCR on it first (e.g. ocrmypdf)")
        starts, pos = [], 0
        for p in pages:
            starts.append(pos)
            pos += len(p) + len(PAGE_SEPARATOR)
        meta: dict[str, Any] = {"pages": len(pages), "page_starts": starts}
        try:
            info = reader.metadata
            if info is not None and info.title:
                meta["title"] = str(info.title)
        except Exception:  # a broken info dictionary is not worth failing the file
            pass
        if errors:
            meta["page_errors"] = errors
        return ParsedText(PAGE_SEPARATOR.join(pages), self.media_type, None, meta)
