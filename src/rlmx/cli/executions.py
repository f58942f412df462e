"""``rlmx executions list|show``: the stored executions and their traces."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console

from ..errors import RlmxError

__all__ = ["executions"]


@click.group()
def executions() -> None:
    """Inspect stored executions and their traces."""


@executions.command("list")
@click.option("--limit", default=20, show_default=True)
def executions_list(limit: int) -> None:
    """List recent root executions, newest first."""
    from ..store import open_store

    for e in open_store().meta.list_executions(limit=limit):
        click.echo(f"{e.execution_id}  {e.status:<18} {e.created_at:%Y-%m-%d %H:%M}  {e.question[:70]}")


@executions.command("show")
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True, help="Print the trajectory as JSON.")
def executions_show(execution_id: str, as_json: bool) -> None:
    """Print the trace of EXECUTION_ID (turns, code, outputs, sub-calls, children)."""
    from ..engine.trace import load_trace
    from ..store import open_store
    from .render import print_trace

    try:
        trace = load_trace(open_store().meta, execution_id)
    except RlmxError as e:
        click.echo(f"rlmx: {e}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(trace, ensure_ascii=False, indent=2, default=str))
    else:
        print_trace(trace, Console(highlight=False, soft_wrap=True))
