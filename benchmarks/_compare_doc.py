"""The table of ``benchmarks/compare.py``: rows, markdown, and its region of docs/benchmarks.md.

Standard library only. A row holds, per side (``"rlmx"``, ``"rlms"``), one figure per repeat in
the row's unit; the table shows min / median / max per side and the ratio of the medians
rlmx / rlms (< 1: rlmx is faster or smaller).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SECTION = "## Performance: side by side with the official rlms (issue 10, item 6)"
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"


@dataclass
class Row:
    """One measure. ``target``: the issue's goal, as text; ``ideal``: seconds the row's figures
    are divided by for the ``× ideal`` figure; ``rg``: grep rows' ripgrep median seconds and the
    min / median / max of the per-round grep/rg ratios; ``ratio=False``: no rlmx/rlms ratio."""

    name: str
    unit: str
    values: dict[str, list[float]]
    target: str = ""
    ratio: bool = True
    ideal: float | None = None
    rg: tuple[float, float, float, float] | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def tree() -> str:
    """The commit measured, and how many files under src/ differ from it (uncommitted work)."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()

    dirty = [ln for ln in git("status", "--porcelain", "--", "src").splitlines() if ln.strip()]
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"commit `{head}`" + (f" + uncommitted changes in {len(dirty)} file(s) under src/" if dirty else "")


def machine() -> dict[str, Any]:
    """nproc, 1/5/15-minute load averages, CPU model and the time (UTC), for the doc."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "load": [round(x, 2) for x in os.getloadavg()],
        "cpu": cpu,
        "utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "tree": tree(),
    }


def _num(x: float) -> str:
    ax = abs(x)
    return f"{x:.3f}" if ax < 1 else f"{x:.2f}" if ax < 10 else f"{x:.1f}" if ax < 100 else f"{x:,.0f}"


def _cell(xs: list[float], unit: str, ideal: float | None) -> str:
    if not xs:
        return "—"
    med = statistics.median(xs)
    s = f"{_num(min(xs))} / **{_num(med)}** / {_num(max(xs))} {unit}".rstrip()
    if ideal:
        s += f" ({med / ideal:.2f}× ideal)"
    return s


def _ratio(row: Row) -> str:
    a, b = row.values.get("rlmx") or [], row.values.get("rlms") or []
    if row.rg:
        _, lo, mid, hi = row.rg
        return f"grep / rg: {lo:.2f} / **{mid:.2f}** / {hi:.2f}×"
    if not row.ratio or not a or not b:
        return "—"
    r = statistics.median(a) / statistics.median(b)
    word = "rlmx faster" if r < 1 else "rlmx slower"
    if row.unit == "MiB":
        word = "rlmx smaller" if r < 1 else "rlmx larger"
    return f"**{r:.2f}** ({word})"


def _verdict(row: Row) -> str:
    """Whether the row meets ``target`` (the forms compare.py uses), or by how much it misses."""
    a, b = row.values.get("rlmx") or [], row.values.get("rlms") or []
    if not row.target or not a:
        return row.target or ""
    med, t = statistics.median(a), row.target
    limit = float(t.split("≤", 1)[1].split("×")[0].split("ms")[0]) if "≤" in t else None
    if limit is None:
        return t
    if "rlms" in t:
        if not b:
            return f"{t}: no rlms figure"
        got = med / statistics.median(b)
    elif "ideal" in t and row.ideal:
        got = med / row.ideal
    elif "rg" in t and row.rg:
        got = row.rg[2]
    else:
        got = med
    return f"{t}: met ({got:.2f})" if got <= limit else f"{t}: **missed** ({got:.3f}, {got / limit:.2f}× the target)"


def render(
    rows: list[Row],
    *,
    command: str,
    rlms: str | None,
    start: dict[str, Any],
    end: dict[str, Any],
    took_s: float,
    args: Any,
) -> str:
    """The markdown that goes between the markers: command, machine, sentence, table."""
    side = (
        "official `rlms` (its own venv: `" + os.path.relpath(rlms, Path(__file__).resolve().parents[1]) + "`)"
        if rlms
        else "official `rlms`: **not installed, rlmx side only** (`sh benchmarks/compare.sh --setup-rlms`)"
    )
    rlms_version = ""
    if rlms:
        out = subprocess.run(
            [rlms, "-c", "import importlib.metadata as m; print(m.version('rlms'))"], capture_output=True
        )
        rlms_version = out.stdout.decode().strip()
    lines = [
        "```",
        command,
        "```",
        "",
        f"Machine: {start['nproc']} cores ({start['cpu']}), shared with other work; load average (1/5/15 min) "
        f"{' / '.join(map(str, start['load']))} at the start, {' / '.join(map(str, end['load']))} at the end "
        f"({start['utc']} → {end['utc']} UTC, {took_s / 60:.1f} min); rlmx at {start['tree']}. "
        f"Python {platform.python_version()}; "
        f"{side}{f', version {rlms_version}' if rlms_version else ''}. Repeats: {args.repeat} for start-up, "
        f"{args.repeat_long} for the others, interleaved (rlmx then rlms, then the other way round).",
        "",
        "**Ratios, not absolute times, are the figures that count on a shared machine**: both sides run "
        "one after the other under the same load, so a busy machine slows both alike while the seconds "
        "themselves move from run to run.",
        "",
        "| measure | rlmx min / **median** / max | official `rlms` min / **median** / max "
        "| rlmx / rlms (medians) | target |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        rl = r.values.get("rlms")
        if r.rg:
            other = f"no grep; `rg` median {r.rg[0]:.3g} s"
        elif rl is None:
            other = "not run (not installed)" if not rlms else "—"
        else:
            other = _cell(rl, r.unit, r.ideal)
        mine = _cell(r.values.get("rlmx") or [], r.unit, r.ideal)
        if r.rg and r.values.get("rlmx"):
            mine = f"median **{_num(r.values['rlmx'][0])}** s"
        lines.append(f"| {r.name} | {mine} | {other} | {_ratio(r)} | {_verdict(r)} |")
        if r.note:
            lines.append(f"| ↳ {r.note} | | | | |")
    return "\n".join(lines) + "\n"


def write_doc(path: Path, text: str) -> None:
    """Replace the marked region of ``path`` with ``text``; the first time, append the section
    (heading + markers) at the end of the file."""
    doc = path.read_text(encoding="utf-8")
    block = f"{BEGIN}\n{text}{END}"
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        doc = head + block + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip("\n") + f"\n\n{SECTION}\n\n{block}\n"
    path.write_text(doc, encoding="utf-8")


def write_json(path: Path, rows: list[Row], start: dict[str, Any], end: dict[str, Any], run: dict[str, Any]) -> None:
    """Every figure of the run and what :func:`render` needs, for a later look or a re-render
    (``.bench/compare-last.json``; ``compare.py --from-json``)."""
    data = {"start": start, "end": end, "rows": [asdict(r) for r in rows], **run}
    path.write_text(json.dumps(data, indent=1))


def read_json(path: Path) -> dict[str, Any]:
    """What :func:`write_json` wrote."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data
