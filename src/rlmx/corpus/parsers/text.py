"""Plain text and source code: the text is kept verbatim (decoded, then canonicalised by
ingestion). Shared checks for every text-like format live in :func:`decode_checked`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rlmx.corpus.parsers.base import ParsedText, ParseError, Parser, looks_binary
from rlmx.corpus.parsers.encoding import decode_text

__all__ = ["CODE_LANGUAGES", "PlainTextParser", "SourceCodeParser", "decode_checked"]

# C0 controls other than tab, newline, vertical tab, form feed, carriage return and escape.
_CONTROL = re.compile(r"[\x01-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_MAX_CONTROL_SHARE = 0.01


def decode_checked(data: bytes, path: Path, media_type: str) -> tuple[str, str]:
    """Decode a text-like file and return ``(text, encoding)``.

    Raises :class:`ParseError` when the file is empty, binary (a NUL byte in its first
    8 KiB, or more than 1% control characters), or holds only whitespace.
    """
    if not data:
        raise ParseError("empty file (0 bytes)", media_type=media_type)
    if looks_binary(data):
        raise ParseError(
            f"binary content (NUL bytes) in a {path.suffix or 'extension-less'} file; "
            "only text, Markdown, reST, HTML, PDF, DOCX and source code are parsed",
            media_type=media_type,
        )
    text, encoding = decode_text(data)
    sample = text[:65536]
    if sample and len(_CONTROL.findall(sample)) > _MAX_CONTROL_SHARE * len(sample):
        raise ParseError("binary content (control characters) in a text file", media_type=media_type)
    if not text.strip():
        raise ParseError("no text: the file holds only whitespace", media_type=media_type)
    return text, encoding


class PlainTextParser(Parser):
    """Plain text (``.txt``, ``.log``, ``.csv``..., and extension-less text files).
    ``meta``: ``{"lines": int}``."""

    name = "text"
    version = "1"
    media_type = "text/plain"

    def parse(self, data: bytes, path: Path) -> ParsedText:
        text, encoding = decode_checked(data, path, self.media_type)
        media, meta = self.describe(path, text.count("\n") + 1)
        return ParsedText(text, media, encoding, meta)

    def describe(self, path: Path, lines: int) -> tuple[str, dict[str, Any]]:
        """``(media_type, meta)`` of a file of ``lines`` lines (also for a file streamed in
        blocks: :mod:`rlmx.corpus.stream`)."""
        media = {".csv": "text/csv", ".tsv": "text/tab-separated-values"}.get(path.suffix.lower(), self.media_type)
        return media, {"lines": lines}


CODE_LANGUAGES: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".java": "java",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".scala": "scala",
    ".groovy": "groovy",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
    ".cs": "csharp",
    ".m": "objective-c",
    ".swift": "swift",
    ".go": "go",
    ".rs": "rust",
    ".rb": "ruby",
    ".php": "php",
    ".pl": "perl",
    ".pm": "perl",
    ".lua": "lua",
    ".r": "r",
    ".jl": "julia",
    ".dart": "dart",
    ".ex": "elixir",
    ".exs": "elixir",
    ".erl": "erlang",
    ".hs": "haskell",
    ".ml": "ocaml",
    ".clj": "clojure",
    ".sh": "shell",
    ".bash": "shell",
    ".zsh": "shell",
    ".fish": "shell",
    ".ps1": "powershell",
    ".bat": "batch",
    ".sql": "sql",
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".jsonl": "json",
    ".ini": "ini",
    ".cfg": "ini",
    ".conf": "ini",
    ".xml": "xml",
    ".css": "css",
    ".scss": "scss",
    ".less": "less",
    ".vue": "vue",
    ".svelte": "svelte",
    ".proto": "protobuf",
    ".graphql": "graphql",
    ".tf": "terraform",
    ".cmake": "cmake",
    ".mk": "make",
    ".gradle": "groovy",
    ".ipynb": "json",
}
CODE_FILENAMES: dict[str, str] = {
    "Makefile": "make",
    "makefile": "make",
    "GNUmakefile": "make",
    "Dockerfile": "dockerfile",
    "CMakeLists.txt": "cmake",
    "Rakefile": "ruby",
    "Gemfile": "ruby",
    "Justfile": "just",
}
_CODE_MEDIA = {
    "python": "text/x-python",
    "javascript": "text/javascript",
    "json": "application/json",
    "xml": "application/xml",
    "yaml": "application/yaml",
    "toml": "application/toml",
    "css": "text/css",
    "shell": "text/x-shellscript",
}


class SourceCodeParser(Parser):
    """Source code and configuration files, kept verbatim.
    ``meta``: ``{"language": str, "lines": int}`` (language from the extension or name)."""

    name = "code"
    version = "1"
    media_type = "text/x-source"

    def parse(self, data: bytes, path: Path) -> ParsedText:
        text, encoding = decode_checked(data, path, self.describe(path, 0)[0])
        media, meta = self.describe(path, text.count("\n") + 1)
        return ParsedText(text, media, encoding, meta)

    def describe(self, path: Path, lines: int) -> tuple[str, dict[str, Any]]:
        """``(media_type, meta)`` of a file of ``lines`` lines (see :class:`PlainTextParser`)."""
        language = CODE_FILENAMES.get(path.name) or CODE_LANGUAGES.get(path.suffix.lower(), "text")
        return _CODE_MEDIA.get(language, f"text/x-{language}"), {"language": language, "lines": lines}
