"""Parsing a file into storable canonical text, in this process or in worker processes.

:func:`prepare` runs a parser, canonicalises its text and builds the offset index: all
the CPU work of ingesting a file, none of the I/O. :class:`PreparePool` runs it in forked worker
processes (only from a single-threaded process: see :func:`can_fork`) so that parsing
PDFs, DOCX and HTML uses every core; a worker that dies (a crash inside a parser library)
only fails the file it was parsing, found by re-running the unfinished files one at a time.
"""

from __future__ import annotations

import hashlib
import importlib
import multiprocessing
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from rlmx.corpus.canonical import build_offset_index, canonicalize
from rlmx.corpus.parsers import ParseError, Parser, ParserRegistry, default_registry

__all__ = ["Failure", "PreparePool", "Prepared", "can_fork", "preload", "prepare"]

T = TypeVar("T")


@dataclass
class Prepared:
    """A parsed file, ready to store: ``text`` is canonical; ``text_sha256`` is the hex
    sha256 of its UTF-8 bytes; ``offset_index`` the ``.idx`` blob (None for ASCII)."""

    media_type: str
    encoding: str | None
    meta: dict[str, Any]
    text: str
    text_sha256: str
    offset_index: bytes | None


@dataclass
class Failure:
    """Why a file could not be prepared."""

    reason: str
    media_type: str | None = None


def prepare(parser: Parser, data: bytes, path: Path) -> Prepared | Failure:
    """Parse ``data`` with ``parser`` and canonicalise. Never raises for a bad file: a
    :class:`ParseError`, an empty result or a parser crash becomes a :class:`Failure`."""
    try:
        parsed = parser.parse(data, path)
        text = canonicalize(parsed.text)
    except ParseError as e:
        return Failure(e.reason, e.media_type)
    except Exception as e:  # a parser bug (or RecursionError, MemoryError) must not stop the rest
        return Failure(f"parser {parser.name!r} failed: {type(e).__name__}: {e}")
    if not text or text.isspace():
        return Failure("no text after parsing", parsed.media_type)
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Prepared(parsed.media_type, parsed.encoding, parsed.meta, text, sha, build_offset_index(text))


_WORKER_REGISTRY: ParserRegistry | None = None


def _prepare_in_worker(parser_name: str, data: bytes, path: str) -> Prepared | Failure:
    global _WORKER_REGISTRY
    if _WORKER_REGISTRY is None:
        _WORKER_REGISTRY = default_registry()
    return prepare(_WORKER_REGISTRY.get(parser_name), data, Path(path))


@dataclass
class _Job(Generic[T]):
    tag: T
    args: tuple[str, bytes, str]
    future: Future[Prepared | Failure] | None = field(default=None)


_LIBRARIES = {
    ".pdf": ("pypdf",),
    ".docx": ("docx",),
    ".html": ("lxml.html",),
    ".htm": ("lxml.html",),
    ".xhtml": ("lxml.html",),
    ".md": ("markdown_it",),
}


def preload(suffixes: Iterable[str]) -> None:
    """Import the parser libraries these file suffixes need, in this process, so forked
    workers inherit them instead of each importing them again (pypdf takes ~0.3 s)."""
    for suffix in {s.lower() for s in suffixes}:
        for module in _LIBRARIES.get(suffix, ()):
            try:
                importlib.import_module(module)
            except ImportError:  # the parser reports it when it runs
                pass


def can_fork() -> bool:
    """True when worker processes may be forked safely: ``fork`` exists and this process
    runs a single thread (forking a threaded process can deadlock the child)."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def _context() -> Any:
    # fork, never spawn/forkserver: those re-run the caller's __main__ module in every
    # worker, which breaks scripts that call ingest() without an `if __name__` guard.
    return multiprocessing.get_context("fork")


class PreparePool(Generic[T]):
    """Prepare files in ``workers`` processes with the default parsers.

    ``submit(tag, parser_name, data, path)`` queues a file; it and :meth:`drain` yield
    ``(tag, Prepared | Failure)`` in submission order. At most
    ``2 * workers`` files are in flight, so memory stays bounded. Use as a context manager.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._jobs: deque[_Job[T]] = deque()

    def __enter__(self) -> PreparePool[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    @property
    def started(self) -> bool:
        """True once the worker processes are forked (on the first :meth:`submit`)."""
        return self._pool is not None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=_context())
        return self._pool

    def submit(self, tag: T, parser_name: str, data: bytes, path: Path) -> Iterator[tuple[T, Prepared | Failure]]:
        """Queue a file; yields results that had to be collected to make room."""
        job: _Job[T] = _Job(tag, (parser_name, data, str(path)))
        self._jobs.append(job)
        try:
            job.future = self._executor().submit(_prepare_in_worker, *job.args)
        except BrokenProcessPool:  # a worker died since the last result was collected
            self._recover()
        while len(self._jobs) > 2 * self.workers:
            yield self._next()

    def drain(self) -> Iterator[tuple[T, Prepared | Failure]]:
        """Yield every queued result."""
        while self._jobs:
            yield self._next()

    def _next(self) -> tuple[T, Prepared | Failure]:
        job = self._jobs[0]
        assert job.future is not None
        try:
            result = job.future.result()
        except BrokenProcessPool:
            self._recover()
            return self._next()
        except Exception as e:  # e.g. a result that cannot be pickled
            result = Failure(f"parser process failed: {type(e).__name__}: {e}")
        self._jobs.popleft()
        return job.tag, result

    def _recover(self) -> None:
        """A worker died: run every unfinished job alone in a fresh process; the one that
        kills its process again fails; then carry on with a new pool."""
        self.close()
        for job in self._jobs:
            f = job.future
            if f is not None and f.done() and not f.cancelled() and f.exception() is None:
                continue
            with ProcessPoolExecutor(1, mp_context=_context()) as solo:
                done: Future[Prepared | Failure] = solo.submit(_prepare_in_worker, *job.args)
                try:
                    done.result()
                except BrokenProcessPool:
                    done = Future()
                    done.set_result(Failure("the parser crashed its process on this file"))
                except Exception as e:
                    done = Future()
                    done.set_result(Failure(f"parser process failed: {type(e).__name__}: {e}"))
            job.future = done
