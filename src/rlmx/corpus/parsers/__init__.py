"""Parsers: raw bytes → text (+ media type, encoding, meta), one small class per format.

``default_registry().parse(path, data)`` picks the parser (file name, extension, content
sniffing) and runs it; every failure is a :class:`ParseError` with its reason.
"""

from __future__ import annotations

from rlmx.corpus.parsers.base import SNIFF_BYTES, ParsedText, ParseError, Parser, looks_binary
from rlmx.corpus.parsers.encoding import decode_text
from rlmx.corpus.parsers.html import HtmlParser
from rlmx.corpus.parsers.markup import MarkdownParser, RstParser
from rlmx.corpus.parsers.office import DocxParser
from rlmx.corpus.parsers.pdf import PdfParser
from rlmx.corpus.parsers.registry import BINARY_EXTENSIONS, ParserRegistry, default_registry
from rlmx.corpus.parsers.text import PlainTextParser, SourceCodeParser

__all__ = [
    "BINARY_EXTENSIONS",
    "SNIFF_BYTES",
    "DocxParser",
    "HtmlParser",
    "MarkdownParser",
    "ParseError",
    "ParsedText",
    "Parser",
    "ParserRegistry",
    "PdfParser",
    "PlainTextParser",
    "RstParser",
    "SourceCodeParser",
    "decode_text",
    "default_registry",
    "looks_binary",
]
