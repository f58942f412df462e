"""Memory of a process tree over time, for ``benchmarks/service_load.py``: RSS of a process
and of its descendants (REPL workers, their fork server), read from ``/proc``, and the rule
that decides whether a series has reached a plateau.

Units: MiB (2**20 bytes), seconds, MiB per minute.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PLATEAU_RULE", "Sample", "plateau", "sample_tree"]

_MIB = 1 << 20

PLATEAU_RULE = (
    "plateau = the median of the last third of the samples is within 5 % of the middle third's "
    "median AND the least-squares slope over the last half is below 1 MiB/min"
)
"""The rule :func:`plateau` applies, as printed with its verdict."""


@dataclass
class Sample:
    """One reading, ``t_s`` seconds after the measurement began: the server's RSS (and of
    it, anonymous memory and mapped files), threads and open file descriptors, and its
    descendants' count, RSS sum and PSS sum (PSS shares the pages forked children hold in
    common, so it adds up; an RSS sum counts shared pages once per child)."""

    t_s: float
    server_rss_mib: float
    server_anon_mib: float
    server_file_mib: float
    server_threads: int
    server_fds: int
    children: int
    children_rss_mib: float
    children_pss_mib: float

    def row(self) -> dict[str, Any]:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def _kib(path: Path, field: str) -> int | None:
    """The number on the ``field:`` line of a ``/proc`` status-like file (KiB for sizes;
    None if the process is gone)."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return 0


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children, grandchildren, ...), from the
    ``/proc/P/task/T/children`` lists of each process's threads (a child belongs to the
    thread that forked it)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            threads = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in threads:
            try:
                kids = [int(x) for x in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def sample_tree(pid: int, t_s: float) -> Sample | None:
    """A :class:`Sample` of ``pid`` and its descendants now; None if ``pid`` is gone."""
    status = Path(f"/proc/{pid}/status")
    rss, anon, file = _kib(status, "VmRSS"), _kib(status, "RssAnon"), _kib(status, "RssFile")
    threads = _kib(status, "Threads")
    if rss is None or anon is None or file is None or threads is None:
        return None
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = -1
    n, c_rss, c_pss = 0, 0, 0
    for c in _descendants(pid):
        r = _kib(Path(f"/proc/{c}/status"), "VmRSS")
        p = _kib(Path(f"/proc/{c}/smaps_rollup"), "Pss")
        if r is None:
            continue
        n, c_rss, c_pss = n + 1, c_rss + r, c_pss + (p or 0)
    return Sample(t_s, rss / 1024, anon / 1024, file / 1024, threads, fds, n, c_rss / 1024, c_pss / 1024)


def _slope_per_min(ts: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` over ``ts`` (seconds), per minute."""
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return 60 * sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / den if den else 0.0


def plateau(ts: list[float], ys: list[float], *, within: float = 0.05, max_slope: float = 1.0) -> dict[str, Any]:
    """The :data:`PLATEAU_RULE` verdict of the series ``ys`` (MiB) sampled at ``ts`` (s):
    the thirds' medians, the last half's slope (MiB/min) and ``plateau`` (bool; None with
    fewer than 6 samples)."""
    n = len(ys)
    if n < 6:
        return {"plateau": None, "samples": n}
    a, b = n // 3, 2 * n // 3
    mid, last = statistics.median(ys[a:b]), statistics.median(ys[b:])
    slope = _slope_per_min(ts[n // 2 :], ys[n // 2 :])
    change = (last - mid) / mid if mid else 0.0
    return {
        "plateau": abs(change) <= within and slope < max_slope,
        "first_third_median_mib": round(statistics.median(ys[:a]), 1),
        "middle_third_median_mib": round(mid, 1),
        "last_third_median_mib": round(last, 1),
        "last_vs_middle": round(change, 4),
        "slope_last_half_mib_per_min": round(slope, 3),
        "samples": n,
    }
