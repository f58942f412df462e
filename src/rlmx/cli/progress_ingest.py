"""Progress of an ingestion on stderr, for ``rlmx ingest`` and the ingestion phase of
``rlmx ask``: a rich progress bar on a terminal, plain lines otherwise, nothing with
``--quiet``.

Use as a context manager whose instance is the ``on_progress`` callback of
:func:`rlmx.corpus.ingest` (``(source_path, done, total)``)::

    with IngestProgress(console, quiet=quiet) as progress:
        corpus = ingest(paths, store, on_progress=progress)

The bar is redrawn from the callback only (no refresh thread): ingestion forks its parser
processes only from a single-threaded process (:func:`rlmx.corpus.prepare.can_fork`).
Plain lines (stderr not a terminal) come at most every :data:`LINE_EVERY_S` seconds, plus
the first and the last.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

__all__ = ["LINE_EVERY_S", "REDRAW_EVERY_S", "IngestProgress"]

LINE_EVERY_S = 2.0
REDRAW_EVERY_S = 0.1


class IngestProgress:
    """``on_progress`` for :func:`rlmx.corpus.ingest` that shows files parsed of all on
    ``console`` (stderr). ``quiet``: show nothing."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.tty = console.is_terminal
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._last = 0.0
        self._started = time.monotonic()
        self._last_line: tuple[int, int] | None = None

    def __enter__(self) -> IngestProgress:
        if not self.quiet and self.tty:
            self._bar = Progress(
                TextColumn("[bold]ingesting[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("files"),
                TimeElapsedColumn(),
                TextColumn("[dim]{task.fields[current]}[/]"),
                console=self.console,
                auto_refresh=False,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("ingest", total=None, current="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __call__(self, source_path: str, done: int, total: int) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        last = done == total
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total, current=Path(source_path).name)
            if last or done == 0 or now - self._last >= REDRAW_EVERY_S:
                self._last = now
                self._bar.refresh()
            return
        if done == 0 or last or now - self._last >= LINE_EVERY_S:
            if self._last_line == (done, total):
                return
            self._last, self._last_line = now, (done, total)
            elapsed = now - self._started
            self.console.print(f"ingesting: {done}/{total} files ({elapsed:.1f} s)", markup=False, highlight=False)
