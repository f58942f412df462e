"""Benchmarks: the RLM paper's task families offline, methods side by side, reports.

Zhang, Kraska & Khattab, *Recursive Language Models*, arXiv 2512.24601, §3 (tasks and
scoring) and §4 (methods). Command line: ``rlmx bench generate | run | report``.

Public API::

    generate(family, n, seed, lengths, data_dir=None, source=None, home=None) -> list[Task]
    write_tasks(tasks, path); read_tasks(path) -> Iterator[Task]
    BenchRunner(RunConfig(methods=[...], model=..., sub_model=...)).run(tasks, out_path)
    build_report(rows) -> Report;  Report.markdown(), .summary(), .plots(folder)
    score(answer_type, answer, gold, meta)

Families: ``sniah`` (:mod:`.sniah`), ``oolong`` (:mod:`.oolong`), ``oolong-pairs``
(:mod:`.pairs`), ``codeqa`` (:mod:`.codeqa`), ``docqa`` (:mod:`.docqa`: real documentation
folders, their ground truth computed from the files). Methods: ``base``, ``retrieval``,
``rlm-d0``, ``rlm-d1``, ``rlm-d2`` (:mod:`.methods`). Offline policies: :mod:`.offline`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .methods import METHODS
from .report import Report, build_report, load_results
from .runner import BenchRunner, RunConfig, parse_methods
from .scoring import score
from .tasks import Task, context_sha256, parse_lengths, read_tasks, write_tasks

__all__ = [
    "DEFAULT_LENGTHS",
    "FAMILIES",
    "METHODS",
    "BenchRunner",
    "Report",
    "RunConfig",
    "Task",
    "build_report",
    "context_sha256",
    "generate",
    "load_results",
    "parse_lengths",
    "parse_methods",
    "read_tasks",
    "score",
    "write_tasks",
]

FAMILIES = ("sniah", "oolong", "oolong-pairs", "codeqa", "docqa")

DEFAULT_LENGTHS: dict[str, list[int]] = {
    "sniah": [8 * 1024],
    "oolong": [8 * 1024],
    "oolong-pairs": [8 * 1024],
    "codeqa": [32 * 1024],
}
"""Context lengths in tokens when ``--lengths`` is not given (``docqa`` has none: its
context is a folder)."""


def generate(
    family: str,
    n: int,
    seed: int,
    lengths: list[int] | None = None,
    *,
    data_dir: str | Path | None = None,
    source: str | Path | Sequence[str | Path] | None = None,
    home: str | Path | None = None,
) -> list[Task]:
    """``n`` tasks per length (tokens) of ``family``, deterministic in ``seed``.

    ``data_dir``: the shared data folder (default ``../shared/data``); ``source``: the code
    base of ``codeqa`` (default: the Python standard library), the folders of ``docqa``
    (``n`` tasks per folder, ingested into the store at ``home``, default ``$RLMX_HOME``).
    Raises ValueError for an unknown family, n < 1, or several sources for ``codeqa``;
    :class:`~rlmx.errors.ConfigError` for lengths given to ``docqa`` or a bad folder."""
    if n < 1:
        raise ValueError("n must be at least 1")
    sources = [] if source is None else [source] if isinstance(source, str | Path) else list(source)
    if family == "docqa":
        from ..config import Settings
        from ..errors import ConfigError
        from ..store import open_store
        from .docqa import generate_docqa

        if lengths:
            raise ConfigError("docqa takes no --lengths: a task's context is its whole --source folder")
        store = open_store(Path(home) if home is not None else Settings().home)
        try:
            return generate_docqa(n, seed, sources, store)
        finally:
            store.close()
    if len(sources) > 1:
        raise ValueError(f"{family} takes one --source")
    source = sources[0] if sources else None
    lengths = lengths or DEFAULT_LENGTHS.get(family, [8 * 1024])
    if family == "sniah":
        from .sniah import generate_sniah

        return generate_sniah(n, seed, lengths, data_dir=data_dir)
    if family == "oolong":
        from .oolong import generate_oolong

        return generate_oolong(n, seed, lengths, data_dir=data_dir)
    if family == "oolong-pairs":
        from .pairs import generate_pairs

        return generate_pairs(n, seed, lengths, data_dir=data_dir)
    if family == "codeqa":
        from .codeqa import generate_codeqa

        return generate_codeqa(n, seed, lengths, source=source)
    raise ValueError(f"unknown task family {family!r}; choose from {', '.join(FAMILIES)}")
