"""Corpora and Documents: parsing, canonical text, offsets, keyword index, ingestion.

Public API::

    ingest(paths, store, *, on_progress=None) -> CorpusRecord
    corpus_from_texts(texts, store) -> CorpusRecord
    context_spec(corpus, store) -> ContextSpec
    canonicalize(text) -> str;  TextReader(text_path, length, index_path)
    SearchIndex(path, readonly=False);  ensure_index(corpus, store) -> Path;  index_key(corpus_id)
    Parser, ParsedText, ParseError, default_registry()

``store`` is anything shaped like :class:`rlmx.corpus.ports.CorpusStore` (``rlmx.store.Store``
is); this package never imports :mod:`rlmx.store`. Its records (``DocumentRecord``,
``CorpusRecord``, ``FailedDocument``) live in :mod:`rlmx.corpus.records`. Each corpus has its
own keyword index blob (:mod:`rlmx.corpus.corpus_index`, ``docs/search.md``).

Importing this package stays cheap (the REPL process imports :mod:`rlmx.corpus.canonical`
and :mod:`rlmx.corpus.index` through it): parser libraries (pypdf, python-docx,
lxml, markdown-it-py, charset-normalizer) and SQLAlchemy load on first use.
"""

from __future__ import annotations

from rlmx.corpus.canonical import CHECKPOINT, TextReader, build_offset_index, canonicalize
from rlmx.corpus.corpus_index import ensure_index, index_key
from rlmx.corpus.ids import corpus_id_for, doc_id_for
from rlmx.corpus.index import SearchIndex, SearchRow
from rlmx.corpus.ingest import INLINE_TEXT_NAME, context_spec, corpus_from_texts, ingest
from rlmx.corpus.parsers import ParsedText, ParseError, Parser, ParserRegistry, default_registry

__all__ = [
    "CHECKPOINT",
    "INLINE_TEXT_NAME",
    "ParseError",
    "ParsedText",
    "Parser",
    "ParserRegistry",
    "SearchIndex",
    "SearchRow",
    "TextReader",
    "build_offset_index",
    "canonicalize",
    "context_spec",
    "corpus_from_texts",
    "corpus_id_for",
    "default_registry",
    "doc_id_for",
    "ensure_index",
    "index_key",
    "ingest",
]
