"""Ingestion progress on stderr (:mod:`rlmx.cli.progress_ingest`): plain lines when stderr is
not a terminal, a bar on one, nothing with ``--quiet``; never a thread (parsers fork)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

from rich.console import Console

from rlmx.cli.progress_ingest import IngestProgress
from rlmx.corpus import ingest
from rlmx.store import open_store


def _rlmx(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlmx.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "RLMX_HOME": str(home)},
    )


def test_rlmx_ingest_prints_plain_progress_lines_unless_quiet(tmp_path: Path, small_corpus: Path):
    proc = _rlmx("ingest", str(small_corpus), home=tmp_path / "h1")
    assert proc.returncode == 0, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.startswith("ingesting:")]
    assert lines[0].startswith("ingesting: 0/3 files") and lines[-1].startswith("ingesting: 3/3 files"), lines
    assert "\x1b[" not in proc.stderr  # no terminal codes in a pipe
    assert "ingested 3 documents" in proc.stderr
    quiet = _rlmx("ingest", "--quiet", str(small_corpus), home=tmp_path / "h2")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert quiet.stdout.count("chars") == 3


def test_the_bar_on_a_terminal_counts_files_without_a_thread(tmp_path: Path, small_corpus: Path):
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    threads: list[int] = []  # rich draws from the callback: no refresh thread
    store = open_store(tmp_path / "h")
    with IngestProgress(console) as progress:

        def on_progress(path: str, done: int, total: int) -> None:
            threads.append(threading.active_count())
            progress(path, done, total)

        ingest([small_corpus], store, on_progress=on_progress)
    store.close()
    assert threads and not any(type(t).__name__ == "_RefreshThread" for t in threading.enumerate())
    assert "ingesting" in out.getvalue() and "3/3" in out.getvalue()


def test_quiet_shows_nothing(small_corpus: Path):
    out = io.StringIO()
    with IngestProgress(Console(file=out, force_terminal=True), quiet=True) as progress:
        for i in range(4):
            progress(str(small_corpus / f"{i}.txt"), i, 3)
    assert out.getvalue() == ""
