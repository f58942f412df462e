"""``rlmx export``: stored trajectories as fine-tuning data (``chat-jsonl``) or full traces
(``trajectory-json``); formats in :mod:`rlmx.export` and ``docs/observability.md``."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console

__all__ = ["export", "parse_since"]

err = Console(stderr=True, highlight=False, soft_wrap=True)

_AGO = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``T`` of ``--since``: an ISO date or date-time (UTC when it names no zone) or an age
    such as ``90m``, ``24h``, ``7d`` (s, m, h, d). Raises :class:`click.BadParameter`."""
    m = _AGO.fullmatch(text.strip())
    if m:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither an ISO date/time (2026-12-01, 2026-12-01T09:30) nor an age (90m, 24h, 7d)",
            param_hint="--since",
        ) from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


@click.command("export")
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every root execution in the store.")
@click.option("--since", metavar="T", help="Root executions created since T (ISO date/time, or an age: 24h, 7d).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["chat-jsonl", "trajectory-json"]),
    default="chat-jsonl",
    show_default=True,
    help="chat-jsonl: one OpenAI-style chat record per execution; trajectory-json: the full traces.",
)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, writable=True), help="File to write.")
@click.option("--status", "statuses", multiple=True, metavar="STATUS", help="Only executions with this status.")
@click.option(
    "--results",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="`rlmx bench run` results (JSONL): their scores, for --min-score.",
)
@click.option("--min-score", type=float, help="Only executions scored at least this in --results.")
@click.option(
    "--subcalls",
    "subcalls_out",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write the sub-LM's (prompt, response) pairs as chat JSONL to this file.",
)
@click.option("--metadata", is_flag=True, help="Add a `metadata` object (ids, status, score) to each record.")
def export(
    ids: tuple[str, ...],
    all_: bool,
    since: str | None,
    fmt: str,
    out: str,
    statuses: tuple[str, ...],
    results: tuple[str, ...],
    min_score: float | None,
    subcalls_out: str | None,
    metadata: bool,
) -> None:
    """Export the trajectories of IDS (or --all, or --since T) for fine-tuning."""
    from ..engine.trace import load_trace
    from ..errors import NotFoundError, RlmxError
    from ..export import (
        TRAJECTORY_FORMAT,
        NotExportable,
        chat_record,
        load_scores,
        select_executions,
        subcall_records,
    )
    from ..store import open_store
    from ..types import Status

    if bool(ids) + all_ + (since is not None) != 1:
        raise click.UsageError("name execution IDS, or --all, or --since T (one of them)")
    known = {s.value for s in Status}
    bad = [s for s in statuses if s.upper() not in known]
    if bad:
        raise click.BadParameter(f"{bad[0]!r}; statuses: {', '.join(sorted(known))}", param_hint="--status")
    if min_score is not None and not results:
        raise click.UsageError("--min-score needs the scores: pass --results FILE (from `rlmx bench run`)")
    when = parse_since(since) if since is not None else None
    try:
        scores = load_scores(results)
        meta = open_store().meta
        recs = select_executions(meta, ids, since=when, statuses=statuses, scores=scores, min_score=min_score)
        written, skipped, pairs = 0, 0, 0
        traces: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        lines: list[str] = []
        sub_lines: list[str] = []
        for rec in recs:
            trace = load_trace(meta, rec.execution_id)
            if subcalls_out:
                for r in subcall_records(trace, metadata=metadata, seen=seen):
                    sub_lines.append(json.dumps(r, ensure_ascii=False))
                    pairs += 1
            if fmt == "trajectory-json":
                traces.append(trace)
                written += 1
                continue
            try:
                record = chat_record(rec, trace["turns"], score=scores.get(rec.execution_id), metadata=metadata)
            except NotExportable as e:
                err.print(f"skipped {rec.execution_id}: {e}")
                skipped += 1
                continue
            lines.append(json.dumps(record, ensure_ascii=False))
            written += 1
    except NotFoundError as e:
        raise click.UsageError(str(e)) from None
    except RlmxError as e:
        err.print(f"[bold red]rlmx:[/] {e}")
        sys.exit(1)
    if fmt == "trajectory-json":
        text = json.dumps({"format": TRAJECTORY_FORMAT, "executions": traces}, ensure_ascii=False, default=str)
        Path(out).write_text(text + "\n", encoding="utf-8")
    else:
        Path(out).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    if subcalls_out:
        Path(subcalls_out).write_text("".join(line + "\n" for line in sub_lines), encoding="utf-8")
    note = f", {skipped} skipped" if skipped else ""
    more = f"; {pairs} sub-call pairs to {subcalls_out}" if subcalls_out else ""
    err.print(f"exported {written} execution{'s' if written != 1 else ''}{note} to {out}{more}")
