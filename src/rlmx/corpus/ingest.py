"""Ingestion: files, folders and globs (or in-memory strings) → stored Documents → a Corpus.

For each file (:mod:`rlmx.corpus.pipeline`): read the bytes, hash them (``raw_sha256``),
pick the parser, and look the Document up by ``(raw_sha256, parser, parser version)``. A
hit reuses the stored record (no parsing, no indexing). A miss parses, canonicalises,
stores the canonical text blob ``text/<text_sha256>.txt`` (plus ``.idx`` for non-ASCII
texts), indexes the text for keyword search and records the Document — in that order, so a
Document row always points at stored text. A file that fails becomes a
:class:`FailedDocument` with its reason; the others proceed. Files of a folder walk or glob
that are not documents (scripts, stylesheets, search indexes...: :mod:`rlmx.corpus.filter`)
are skipped before reading, and exact duplicates (the same canonical text) are kept once,
their other names as aliases. Last, the corpus's keyword index (the blob
``index/v1/<corpus_id>.fts5``, :mod:`rlmx.corpus.corpus_index`) is published unless it
exists, then the corpus recorded. Ids are :mod:`rlmx.corpus.ids`'s (``corpus_id_for`` is
re-exported here for its importers).

``store`` is anything shaped like :class:`~rlmx.corpus.ports.CorpusStore` (``rlmx.store.Store``
is): this package never imports the store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlmx.corpus.canonical import build_offset_index, canonicalize
from rlmx.corpus.collect import SourceFile, collect
from rlmx.corpus.corpus_index import ensure_index
from rlmx.corpus.filter import dedupe
from rlmx.corpus.ids import corpus_id_for, doc_id_for, sha256_hex
from rlmx.corpus.parsers import ParsedText, Parser, ParserRegistry, default_registry
from rlmx.corpus.pipeline import auto_workers, run_files
from rlmx.corpus.prepare import Prepared
from rlmx.corpus.writer import Writer
from rlmx.errors import IngestError

if TYPE_CHECKING:  # pydantic models load on first use: the REPL imports this package
    from rlmx.corpus.ports import CorpusStore
    from rlmx.corpus.records import CorpusRecord, DocumentRecord, FailedDocument
    from rlmx.sandbox.base import ContextSpec

__all__ = [
    "INLINE_PARSER",
    "INLINE_TEXT_NAME",
    "ProgressCallback",
    "context_spec",
    "corpus_from_texts",
    "corpus_id_for",
    "ingest",
]

ProgressCallback = Callable[[str, int, int], None]
INLINE_PARSER, INLINE_VERSION = "inline", "1"
INLINE_TEXT_NAME = "text"  # the one document of corpus_from_texts(str): a "text" context
_REGISTRY: ParserRegistry | None = None


class _InlineParser(Parser):
    """The pseudo-parser of in-memory strings (name ``inline``; never parses bytes)."""

    name = INLINE_PARSER
    version = INLINE_VERSION

    def parse(self, data: bytes, path: Path) -> ParsedText:
        return ParsedText(data.decode("utf-8", "replace"), "text/plain", "utf-8", {})


_INLINE = _InlineParser()


def _registry() -> ParserRegistry:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = default_registry()
    return _REGISTRY


def _no_documents(
    paths: Sequence[str | Path], failures: list[FailedDocument], skipped: Sequence[tuple[str, str]]
) -> IngestError:
    shown = "; ".join(f"{f.source_path}: {f.reason}" for f in failures[:10])
    more = f" (and {len(failures) - 10} more)" if len(failures) > 10 else ""
    kinds = sorted({why for _, why in skipped})
    left = (
        f"; {len(skipped)} files skipped as not documents ({', '.join(kinds)}): "
        "name them explicitly or pass --include GLOB (session API: include)"
        if skipped
        else ""
    )
    return IngestError(
        f"nothing could be ingested from {[str(p) for p in paths]}: {shown or 'no files'}{more}{left}. "
        "Pass existing files, folders or glob patterns of supported types: plain text, "
        "Markdown, reST, HTML, PDF (with a text layer), DOCX, source code."
    )


def ingest(
    paths: Sequence[str | Path],
    store: CorpusStore,
    *,
    on_progress: ProgressCallback | None = None,
    registry: ParserRegistry | None = None,
    workers: int | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> CorpusRecord:
    """Ingest files, folders (recursive) and glob patterns into ``store`` as one corpus.

    Returns the stored :class:`CorpusRecord`: documents ordered by display name, plus the
    files that failed with their reasons. ``on_progress(source_path, done, total)`` is
    called once the files are listed (``("", 0, total)``), then after each file (``done``
    counts from 1). Unchanged files are cache hits.
    ``workers``: parser processes (default: one per core, up to 4, when there are two or
    more PDF/DOCX/HTML files of 200 KB in all; else 1, parsing in this process). Workers
    are forked, so a multi-threaded caller, a platform without ``fork`` or a custom
    ``registry`` always parses in this process.
    Files of a folder walk or glob that are not documents are skipped (``skipped``, by
    reason; ``include`` / ``exclude`` glob patterns override: :mod:`rlmx.corpus.filter`);
    a file named by its path is always read. Files with the same canonical text are one
    document (``duplicates``; the kept one's ``meta["aliases"]`` has the other names).
    ``CorpusRecord.summary()`` counts all of it.
    Raises :class:`~rlmx.errors.IngestError` when no document at all could be ingested
    (the message lists what failed), ``StoreError`` when the store itself fails.
    """
    from rlmx.corpus.records import CorpusRecord, DocumentRecord, FailedDocument, SkippedFile

    if isinstance(paths, str | Path):
        paths = [paths]
    include, exclude = (
        [include] if isinstance(include, str) else include,
        [exclude] if isinstance(exclude, str) else exclude,
    )
    files, problems, skipped = collect(paths, include=include, exclude=exclude)
    failures = [FailedDocument(source_path=arg, reason=why) for arg, why in problems]
    if registry is not None:
        workers = 1
    elif workers is None:
        workers = auto_workers(files)
    docs: list[DocumentRecord] = []
    done = 0

    def emit(src: SourceFile, result: DocumentRecord | FailedDocument) -> None:
        nonlocal done
        done += 1
        if isinstance(result, DocumentRecord):
            docs.append(result)
        else:
            failures.append(result)
        if on_progress is not None:
            on_progress(str(src.path), done, len(files))

    if on_progress is not None:
        on_progress("", 0, len(files))
    writer = Writer(store)
    try:
        run_files(files, writer, registry or _registry(), workers, emit)
        if not docs:
            raise _no_documents(paths, failures, skipped)
        docs.sort(key=lambda d: d.name)
        all_ids = {d.doc_id for d in docs}
        docs, duplicates = dedupe(docs)
        writer.forget(all_ids - {d.doc_id for d in docs})
        corpus = CorpusRecord(corpus_id=corpus_id_for(docs), documents=docs, failures=failures)
        writer.finish(corpus)
    finally:
        writer.close()
    store.meta.put_corpus(corpus)
    stored = store.meta.get_corpus(corpus.corpus_id)
    aliases = {d.doc_id: d.meta["aliases"] for d in docs if "aliases" in d.meta}
    return stored.model_copy(
        update={
            "documents": [
                d.model_copy(update={"meta": {**d.meta, "aliases": aliases[d.doc_id]}}) if d.doc_id in aliases else d
                for d in stored.documents
            ],
            "skipped": [SkippedFile(source_path=p, reason=why) for p, why in skipped],
            "duplicates": duplicates,
        }
    )


def corpus_from_texts(texts: str | Sequence[str] | Mapping[str, str], store: CorpusStore) -> CorpusRecord:
    """Store in-memory strings as a corpus (the Python API's ``context=``).

    A single ``str`` becomes one document named ``"text"`` whose context is string-like
    (:func:`context_spec` gives kind ``"text"``); a sequence gives ``text_0``, ``text_1``...
    in order; a mapping uses its keys as names, in order. Parser ``"inline"``, media type
    ``text/plain``. Raises ``TypeError`` for non-string items, ``IngestError`` when empty.
    """
    from rlmx.corpus.records import CorpusRecord

    items: list[tuple[str, str]]
    if isinstance(texts, str):
        items = [(INLINE_TEXT_NAME, texts)]
    elif isinstance(texts, Mapping):
        items = [(str(k), v) for k, v in texts.items()]
    else:
        items = [(f"text_{i}", v) for i, v in enumerate(texts)]
    if not items:
        raise IngestError("no texts given: pass a string, a list of strings or a name → text mapping")
    writer = Writer(store)
    docs = []
    try:
        for name, text in items:
            if not isinstance(text, str):
                raise TypeError(f"text {name!r} is {type(text).__name__}, expected str")
            try:
                raw, safe = text.encode("utf-8"), text
            except UnicodeEncodeError:  # lone surrogates: store U+FFFD instead
                raw = text.encode("utf-8", "surrogatepass")
                safe = raw.decode("utf-8", "replace")
            raw_sha = sha256_hex(raw)
            source = f"<inline>/{name}"
            hit = store.meta.find_document(raw_sha, INLINE_PARSER, INLINE_VERSION)
            if hit is not None and (doc := writer.reuse(hit, name, source)) is not None:
                docs.append(doc)
                continue
            canonical = canonicalize(safe)
            prepared = Prepared(
                media_type="text/plain",
                encoding="utf-8",
                meta={},
                text=canonical,
                text_sha256=sha256_hex(canonical.encode("utf-8")),
                offset_index=build_offset_index(canonical),
            )
            docs.append(
                writer.write(
                    doc_id=doc_id_for(raw_sha, INLINE_PARSER, INLINE_VERSION),
                    name=name,
                    source_path=source,
                    size=len(raw),
                    raw_sha256=raw_sha,
                    parser=_INLINE,
                    prepared=prepared,
                )
            )
        corpus = CorpusRecord(corpus_id=corpus_id_for(docs), documents=docs)
        writer.finish(corpus)
    finally:
        writer.close()
    store.meta.put_corpus(corpus)
    return store.meta.get_corpus(corpus.corpus_id)


def context_spec(corpus: CorpusRecord, store: CorpusStore) -> ContextSpec:
    """The REPL's view of ``corpus``: one :class:`ContextDoc` per document with local
    paths of its text (and offset index) blobs, and the local path of the corpus's own FTS
    index (:func:`~rlmx.corpus.corpus_index.ensure_index`: rebuilt from the texts when its
    blob is missing). Kind ``"text"`` for a corpus made from a single string, else
    ``"corpus"``. Raises ``NotFoundError`` when a text blob is missing."""
    from rlmx.sandbox.base import ContextDoc, ContextSpec

    docs = []
    for d in corpus.documents:
        meta: dict[str, Any] = {"source_path": d.source_path, "media_type": d.media_type, **d.meta}
        docs.append(
            ContextDoc(
                doc_id=d.doc_id,
                name=d.name,
                length=d.length_chars,
                text_path=str(store.blobs.local_path(d.text_key)),
                index_path=str(store.blobs.local_path(d.index_key)) if d.index_key else None,
                meta=meta,
            )
        )
    single = (
        len(corpus.documents) == 1
        and corpus.documents[0].parser == INLINE_PARSER
        and corpus.documents[0].name == INLINE_TEXT_NAME
    )
    index_path = str(ensure_index(corpus, store))
    return ContextSpec(docs=docs, index_path=index_path, kind="text" if single else "corpus")
