"""Content addresses of Documents and Corpora (DESIGN.md, "content address"): a Document's
id follows from its raw bytes and the parser that read them, a Corpus's from its ordered
``(doc_id, name)`` pairs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pydantic models load on first use: the REPL imports this package
    from rlmx.corpus.records import DocumentRecord

__all__ = ["corpus_id_for", "doc_id_for", "sha256_hex"]


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 lower-case hex digits."""
    return hashlib.sha256(data).hexdigest()


def doc_id_for(raw_sha256: str, parser: str, parser_version: str) -> str:
    """``"doc_" + sha256("<raw_sha256>:<parser>:<version>")[:20]`` (DESIGN: content address)."""
    return "doc_" + sha256_hex(f"{raw_sha256}:{parser}:{parser_version}".encode())[:20]


def corpus_id_for(documents: Sequence[DocumentRecord]) -> str:
    """``"cor_" + sha256`` over the ordered ``(doc_id, name)`` pairs, first 20 hex digits."""
    pairs = [[d.doc_id, d.name] for d in documents]
    return "cor_" + sha256_hex(json.dumps(pairs, ensure_ascii=False).encode())[:20]
