"""Choosing a parser for a file: by file name, then extension, then content sniffing.

Known binary formats (images, archives, media, executables, legacy Office files...) are
refused with a reason. A file with an unknown or no extension is sniffed: ``%PDF-`` → PDF,
an HTML document → HTML, a DOCX package → DOCX, NUL bytes → refused as binary, anything
else → plain text.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rlmx.corpus.parsers.base import ParsedText, ParseError, Parser, looks_binary
from rlmx.corpus.parsers.html import HtmlParser
from rlmx.corpus.parsers.markup import MarkdownParser, RstParser
from rlmx.corpus.parsers.office import DocxParser
from rlmx.corpus.parsers.pdf import PdfParser
from rlmx.corpus.parsers.text import (
    CODE_FILENAMES,
    CODE_LANGUAGES,
    PlainTextParser,
    SourceCodeParser,
)

__all__ = ["BINARY_EXTENSIONS", "ParserRegistry", "default_registry"]

_HINTS = {
    ".doc": "legacy Word .doc is not supported; save it as .docx or PDF",
    ".xls": "spreadsheets are not parsed; export to CSV",
    ".xlsx": "spreadsheets are not parsed; export to CSV",
    ".ppt": "presentations are not parsed; export to PDF",
    ".pptx": "presentations are not parsed; export to PDF",
    ".odt": "OpenDocument text is not parsed; save it as .docx or PDF",
    ".rtf": "RTF is not parsed; save it as .docx or PDF",
    ".epub": "EPUB is not parsed; convert it to HTML or PDF",
}
# fmt: off
BINARY_EXTENSIONS = frozenset([
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ico", ".icns", ".heic",
    ".psd", ".svgz", ".raw", ".cr2", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z",
    ".rar", ".tar", ".jar", ".war", ".whl", ".egg", ".deb", ".rpm", ".dmg", ".iso", ".apk",
    ".exe", ".dll", ".so", ".dylib", ".bin", ".o", ".a", ".lib", ".obj", ".class", ".pyc",
    ".pyo", ".pyd", ".wasm", ".elf", ".mp3", ".mp4", ".m4a", ".wav", ".flac", ".ogg", ".opus",
    ".aac", ".avi", ".mov", ".mkv", ".webm", ".wmv", ".mid", ".woff", ".woff2", ".ttf", ".otf",
    ".eot", ".sqlite", ".sqlite3", ".db", ".mdb", ".parquet", ".arrow", ".feather", ".npy",
    ".npz", ".pkl", ".pickle", ".pt", ".pth", ".onnx", ".safetensors", ".h5", ".hdf5", ".ckpt",
    ".odt", ".ods", ".odp", ".rtf", ".epub", ".doc", ".xls", ".xlsx", ".ppt", ".pptx",
])
# fmt: on


class ParserRegistry:
    """Parsers by extension (``".md"``) and exact file name (``"Makefile"``)."""

    def __init__(self) -> None:
        self._by_ext: dict[str, Parser] = {}
        self._by_filename: dict[str, Parser] = {}
        self._by_name: dict[str, Parser] = {}

    def register(self, parser: Parser, extensions: Iterable[str] = (), filenames: Iterable[str] = ()) -> None:
        """Use ``parser`` for these extensions (with the dot, any case) and file names."""
        self._by_name[parser.name] = parser
        for ext in extensions:
            self._by_ext[ext.lower()] = parser
        for fn in filenames:
            self._by_filename[fn] = parser

    def get(self, name: str) -> Parser:
        """The parser registered under ``name``. Raises ``KeyError``."""
        return self._by_name[name]

    @property
    def parsers(self) -> list[Parser]:
        return list(self._by_name.values())

    def parser_for(self, path: Path, data: bytes) -> Parser:
        """Pick the parser for ``path`` whose content is ``data`` (bytes).

        Raises :class:`ParseError` for a known binary format or unknown binary content.
        """
        if path.name in self._by_filename:
            return self._by_filename[path.name]
        ext = path.suffix.lower()
        if ext in BINARY_EXTENSIONS:
            hint = _HINTS.get(ext, "binary formats (images, archives, media...) are not parsed")
            raise ParseError(f"unsupported file type '{ext}': {hint}")
        if ext in self._by_ext:
            return self._by_ext[ext]
        return self._sniff(path, data)

    def _sniff(self, path: Path, data: bytes) -> Parser:
        head = data[:1024]
        if head.startswith(b"%PDF-") and "pdf" in self._by_name:
            return self._by_name["pdf"]
        if head.startswith(b"PK\x03\x04") and b"word/" in data[:65536] and "docx" in self._by_name:
            return self._by_name["docx"]
        start = head.lstrip()[:15].lower()
        if start.startswith((b"<!doctype html", b"<html")) and "html" in self._by_name:
            return self._by_name["html"]
        if looks_binary(data):
            what = f"'{path.suffix}'" if path.suffix else "without an extension"
            raise ParseError(f"unsupported file type {what}: binary content")
        return self._by_name["text"]

    def parse(self, path: Path, data: bytes) -> tuple[Parser, ParsedText]:
        """Pick the parser and parse. Raises :class:`ParseError`."""
        parser = self.parser_for(path, data)
        return parser, parser.parse(data, path)


def default_registry() -> ParserRegistry:
    """A registry with every built-in parser (text, Markdown, reST, HTML, PDF, DOCX, code)."""
    reg = ParserRegistry()
    reg.register(PlainTextParser(), [".txt", ".text", ".log", ".csv", ".tsv", ".out"])
    reg.register(MarkdownParser(), [".md", ".markdown", ".mdown", ".mkd", ".mdx"])
    reg.register(RstParser(), [".rst", ".rest"])
    reg.register(HtmlParser(), [".html", ".htm", ".xhtml"])
    reg.register(PdfParser(), [".pdf"])
    reg.register(DocxParser(), [".docx"])
    reg.register(SourceCodeParser(), CODE_LANGUAGES, CODE_FILENAMES)
    return reg
