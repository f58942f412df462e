"""The per-file half of :func:`rlmx.corpus.ingest.ingest`: each listed file to a stored
:class:`DocumentRecord` or a :class:`FailedDocument` — read, hash, look the Document up by
``(raw_sha256, parser, parser version)``, and on a miss parse (here, or in forked worker
processes for CPU-bound PDF/DOCX/HTML), canonicalise and write. Files of
``STREAM_MIN_BYTES`` or more take the block-wise path (:mod:`rlmx.corpus.stream_ingest`).
Building the corpus from the results is :mod:`rlmx.corpus.ingest`'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rlmx.corpus.collect import SourceFile
from rlmx.corpus.ids import doc_id_for, sha256_hex
from rlmx.corpus.parsers import ParseError, Parser, ParserRegistry
from rlmx.corpus.prepare import Failure, Prepared, PreparePool, can_fork, preload, prepare
from rlmx.corpus.stream import STREAM_MIN_BYTES
from rlmx.corpus.stream_ingest import StreamStep, begin_stream, finish_stream
from rlmx.corpus.writer import Writer

if TYPE_CHECKING:  # pydantic models load on first use: the REPL imports this package
    from rlmx.corpus.records import DocumentRecord, FailedDocument

__all__ = ["MAX_WORKERS", "PARALLEL_MIN_BYTES", "Emit", "auto_workers", "run_files"]

_HEAVY_SUFFIXES = frozenset({".pdf", ".docx", ".html", ".htm", ".xhtml"})
_HEAVY_PARSERS = frozenset({"pdf", "docx", "html"})  # CPU-bound: parsed in worker processes
PARALLEL_MIN_BYTES = 200_000
"""Bytes of PDF/DOCX/HTML (2 files or more) before worker processes pay off."""
MAX_WORKERS = 4
"""Parser worker processes at most (:func:`auto_workers`)."""

Emit = Callable[[SourceFile, "DocumentRecord | FailedDocument"], None]
"""Called once per file, in completion order, with the file's stored record or failure."""


@dataclass
class _Todo:
    """A file that missed the cache: to be prepared (parsed), then written."""

    src: SourceFile
    raw: bytes
    size: int
    raw_sha256: str
    parser: Parser


def _begin(
    src: SourceFile, writer: Writer, registry: ParserRegistry
) -> DocumentRecord | FailedDocument | _Todo | StreamStep:
    """Read, hash, pick the parser and look the Document up: a cache hit, a failure, or
    a :class:`_Todo` to prepare."""
    from rlmx.corpus.records import FailedDocument

    source_path = str(src.path)
    try:
        if src.path.stat().st_size >= STREAM_MIN_BYTES and (big := begin_stream(src, writer, registry)) is not None:
            return big
        raw = src.path.read_bytes()
    except OSError as e:
        return FailedDocument(source_path=source_path, reason=f"cannot read the file: {e.strerror or e}")
    raw_sha = sha256_hex(raw)
    try:
        parser = registry.parser_for(src.path, raw)
    except ParseError as e:
        return FailedDocument(source_path=source_path, reason=e.reason, media_type=e.media_type)
    hit = writer.store.meta.find_document(raw_sha, parser.name, parser.version)
    if hit is not None and (doc := writer.reuse(hit, src.name, source_path)) is not None:
        return doc
    return _Todo(src, raw, len(raw), raw_sha, parser)


def _streamed(step: StreamStep, writer: Writer) -> DocumentRecord | FailedDocument:
    return finish_stream(step, doc_id_for(step.scanned.raw_sha256, step.parser.name, step.parser.version), writer)


def _finish(todo: _Todo, result: Prepared | Failure, writer: Writer) -> DocumentRecord | FailedDocument:
    from rlmx.corpus.records import FailedDocument

    if isinstance(result, Failure):
        return FailedDocument(source_path=str(todo.src.path), reason=result.reason, media_type=result.media_type)
    return writer.write(
        doc_id=doc_id_for(todo.raw_sha256, todo.parser.name, todo.parser.version),
        name=todo.src.name,
        source_path=str(todo.src.path),
        size=todo.size,
        raw_sha256=todo.raw_sha256,
        parser=todo.parser,
        prepared=result,
    )


def auto_workers(files: Sequence[SourceFile]) -> int:
    """Worker processes worth starting: parsing PDF, DOCX and HTML is CPU-bound, plain
    text is not (storing dominates). 1 = parse in this process."""
    cpus = os.cpu_count() or 1
    count, size = 0, 0
    for f in files:
        if f.path.suffix.lower() in _HEAVY_SUFFIXES:
            try:
                size += f.path.stat().st_size
                count += 1
            except OSError:
                continue
    if cpus < 2 or count < 2 or size < PARALLEL_MIN_BYTES or not can_fork():
        return 1
    return min(cpus, MAX_WORKERS, count)


def run_files(files: Sequence[SourceFile], writer: Writer, registry: ParserRegistry, workers: int, emit: Emit) -> None:
    """Turn every file of ``files`` into a record or a failure through ``writer`` and pass
    each to ``emit``. ``workers``: parser processes (1, or no ``fork``: all in this process,
    blobs written by threads)."""
    if workers <= 1 or not can_fork():
        writer.background = True  # nothing is forked: blobs are written by threads
        for src in files:
            step = _begin(src, writer, registry)
            if isinstance(step, StreamStep):
                step = _streamed(step, writer)
            elif isinstance(step, _Todo):
                step = _finish(step, prepare(step.parser, step.raw, src.path), writer)
            emit(src, step)
        return
    preload(f.path.suffix for f in files)
    with PreparePool[_Todo](workers) as pool:
        for src in files:
            writer.background = pool.started  # the workers are forked: threads are safe now
            step = _begin(src, writer, registry)
            if isinstance(step, StreamStep):
                emit(src, _streamed(step, writer))
                continue
            if not isinstance(step, _Todo):
                emit(src, step)
                continue
            if step.parser.name not in _HEAVY_PARSERS:  # cheaper here than a round trip
                emit(src, _finish(step, prepare(step.parser, step.raw, src.path), writer))
                continue
            raw, step.raw = step.raw, b""  # the pool holds the bytes until parsed
            for todo, result in pool.submit(step, step.parser.name, raw, src.path):
                emit(todo.src, _finish(todo, result, writer))
        for todo, result in pool.drain():
            emit(todo.src, _finish(todo, result, writer))
