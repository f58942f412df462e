"""The parser seam (DESIGN.md: ``Parser.parse``) and its result.

A :class:`Parser` turns a file's raw bytes into text. It carries a ``name`` and a
``version`` that go into the Document id: bump ``version`` whenever the text a parser
produces for the same bytes can change, so stored checksums stay true (DESIGN.md,
invariant 2). Parsers raise :class:`ParseError` with a reason a person can act on; ingestion
records it on a :class:`~rlmx.store.base.FailedDocument` and carries on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

from rlmx.errors import IngestError

__all__ = ["SNIFF_BYTES", "ParseError", "ParsedText", "Parser", "dist_version", "looks_binary"]

SNIFF_BYTES = 8192


class ParseError(IngestError):
    """A file could not be parsed: binary, empty, corrupt, encrypted or unsupported.

    ``reason`` is the message (what is wrong and, where possible, what to do);
    ``media_type`` the file's media type when known.
    """

    def __init__(self, reason: str, *, media_type: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.media_type = media_type


@dataclass
class ParsedText:
    """A parser's output.

    ``text``: the extracted text (ingestion canonicalises it; parsers that put character
    offsets in ``meta`` return canonical text already so the offsets stay true);
    ``media_type``: e.g. ``"text/markdown"``; ``encoding``: the detected character encoding
    of text formats (None for binary formats such as PDF); ``meta``: JSON-able details
    (title, headings, page offsets, language...). Offsets in ``meta`` are code points.
    """

    text: str
    media_type: str
    encoding: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class Parser(ABC):
    """Turns raw bytes into :class:`ParsedText`. Subclasses set ``name``, ``version``,
    ``media_type`` and implement :meth:`parse`."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    media_type: ClassVar[str] = "text/plain"

    @abstractmethod
    def parse(self, data: bytes, path: Path) -> ParsedText:
        """Parse ``data`` (the whole file, bytes) read from ``path`` (used for its name and
        extension only). Raises :class:`ParseError` with the reason."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} v{self.version}>"


def looks_binary(data: bytes) -> bool:
    """True when the first ``SNIFF_BYTES`` bytes hold a NUL byte (and no UTF-16/32 BOM)."""
    head = data[:SNIFF_BYTES]
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        return False
    return b"\x00" in head


def dist_version(distribution: str) -> str:
    """The installed version of ``distribution`` (for parser versions) without importing
    it; ``"unknown"`` when it is not installed."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
