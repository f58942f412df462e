"""Ingesting one large text file in blocks (:mod:`rlmx.corpus.stream`): the steps
:func:`rlmx.corpus.ingest.ingest` takes for a file of ``STREAM_MIN_BYTES`` or more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlmx.corpus.collect import SourceFile
from rlmx.corpus.parsers import ParseError, Parser, ParserRegistry
from rlmx.corpus.stream import STREAM_PARSERS, Scan, scan
from rlmx.corpus.writer import Writer

if TYPE_CHECKING:
    from rlmx.corpus.records import DocumentRecord, FailedDocument

__all__ = ["StreamStep", "begin_stream", "finish_stream"]


@dataclass
class StreamStep:
    """A large UTF-8 text file that missed the cache: written in blocks (:mod:`.stream`)."""

    src: SourceFile
    scanned: Scan
    parser: Parser
    media_type: str
    meta: dict[str, Any]


def begin_stream(
    src: SourceFile, writer: Writer, registry: ParserRegistry
) -> DocumentRecord | FailedDocument | StreamStep | None:
    """Read the head of a large file, pick its parser, :func:`~rlmx.corpus.stream.scan` it
    and look it up: a cache hit, a failure, a :class:`StreamStep`, or None when it is not a UTF-8 text or source file
    (it is then read whole). Raises ``OSError``."""
    from rlmx.corpus.records import FailedDocument

    with open(src.path, "rb") as f:
        head = f.read(1 << 16)
    try:
        parser = registry.parser_for(src.path, head)
    except ParseError:
        return None  # the in-memory path says why
    describe = getattr(parser, "describe", None)
    if parser.name not in STREAM_PARSERS or not callable(describe):
        return None
    media_type = describe(src.path, 0)[0]
    scanned = scan(src.path, media_type)
    if scanned.encoding is None:
        return None
    hit = writer.store.meta.find_document(scanned.raw_sha256, parser.name, parser.version)
    if hit is not None and (doc := writer.reuse(hit, src.name, str(src.path))) is not None:
        return doc
    if scanned.failure is not None:
        return FailedDocument(source_path=str(src.path), reason=scanned.failure.reason, media_type=media_type)
    media_type, meta = describe(src.path, scanned.lines)
    return StreamStep(src, scanned, parser, media_type, meta)


def finish_stream(step: StreamStep, doc_id: str, writer: Writer) -> DocumentRecord | FailedDocument:
    from rlmx.corpus.records import FailedDocument

    try:
        return writer.write_stream(
            doc_id=doc_id,
            name=step.src.name,
            source_path=str(step.src.path),
            scanned=step.scanned,
            parser=step.parser,
            media_type=step.media_type,
            meta=step.meta,
        )
    except (OSError, ValueError) as e:
        reason = str(e) if isinstance(e, ValueError) else f"cannot read the file: {e.strerror or e}"
        return FailedDocument(source_path=str(step.src.path), reason=reason, media_type=step.media_type)
