"""Benchmarks: the RLM paper's task families offline, methods side by side, reports.

Zhang, Kraska & Khattab, *Recursive Language Models*, arXiv 2512.24601, §3 (tasks and
scoring) and §4 (methods). Command line: ``rlmx bench generate | run | report``.

Public API::

    generate(family, n, seed, lengths, data_dir=None, source=None) -> list[Task]
    write_tasks(tasks, path); read_tasks(path) -> Iterator[Task]
    BenchRunner(RunConfig(methods=[...], model=..., sub_model=...)).run(tasks, out_path)
    build_report(rows) -> Report;  Report.markdown(), .summary(), .plots(folder)
    score(answer_type, answer, gold, meta)

Families: ``sniah`` (:mod:`.sniah`), ``oolong`` (:mod:`.oolong`), ``oolong-pairs``
(:mod:`.pairs`), ``codeqa`` (:mod:`.codeqa`). Methods: ``base``, ``retrieval``,
``rlm-d0``, ``rlm-d1``, ``rlm-d2`` (:mod:`.methods`). Offline policies: :mod:`.offline`.
"""

from __future__ import annotations

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

FAMILIES = ("sniah", "oolong", "oolong-pairs", "codeqa")

DEFAULT_LENGTHS: dict[str, list[int]] = {
    "sniah": [8 * 1024],
    "oolong": [8 * 1024],
    "oolong-pairs": [8 * 1024],
    "codeqa": [32 * 1024],
}
"""Context lengths in tokens when ``--lengths`` is not given."""


def generate(
    family: str,
    n: int,
    seed: int,
    lengths: list[int] | None = None,
    *,
    data_dir: str | Path | None = None,
    source: str | Path | None = None,
) -> list[Task]:
    """``n`` tasks per length (tokens) of ``family``, deterministic in ``seed``.

    ``data_dir``: the shared data folder (default ``../shared/data``); ``source``: the code
    base of ``codeqa`` (default: the Python standard library). Raises ValueError for an
    unknown family or n < 1."""
    if n < 1:
        raise ValueError("n must be at least 1")
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
