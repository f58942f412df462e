"""``rlmx dev cluster up|down|status|env``: a local scale-out cluster on 127.0.0.1
(PostgreSQL, an S3 endpoint, API servers, workers; :mod:`rlmx.dev.cluster`).

``up`` prints what runs where on stderr and the ``export`` lines on stdout, so
``eval "$(rlmx dev cluster up)"`` points this shell's ``rlmx`` commands at the cluster.
Exit codes: 0 done (``status``: everything is up), 1 an error or (``status``) something is
down or there is no cluster.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

if TYPE_CHECKING:
    from ..dev.cluster import Cluster

__all__ = ["cluster"]

err = Console(stderr=True, highlight=False, soft_wrap=True)

_DIR_HELP = "The cluster's folder: state, logs, homes (default $RLMX_CLUSTER_DIR, else $RLMX_HOME/cluster)."


def _cluster(folder: str | None) -> Cluster:
    from ..dev.cluster import Cluster, default_dir

    return Cluster(Path(folder) if folder else default_dir())


def _fail(e: Exception) -> None:
    err.print(f"[bold red]rlmx:[/] {e}", markup=True)
    sys.exit(1)


@click.group()
def cluster() -> None:
    """A local cluster on 127.0.0.1: PostgreSQL, S3 (moto), API servers and workers (docs/deploy.md)."""


@cluster.command("up")
@click.option("--dir", "folder", type=click.Path(file_okay=False), help=_DIR_HELP)
@click.option("--api-servers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--workers", default=3, show_default=True, type=click.IntRange(0, 64))
@click.option(
    "--base-port", type=click.IntRange(1, 65535), help="API server i listens on BASE_PORT+i-1 (default: free ports)."
)
@click.option(
    "--allowed-paths", default="", help="RLMX_ALLOWED_PATHS of the API servers (':'-separated; default none)."
)
@click.option("--model", help="RLMX_MODEL of every process (provider variables pass through from this shell).")
@click.option("--timeout", "timeout_s", default=120.0, show_default=True, help="Seconds to wait for the processes.")
def up(
    folder: str | None,
    api_servers: int,
    workers: int,
    base_port: int | None,
    allowed_paths: str,
    model: str | None,
    timeout_s: float,
) -> None:
    """Start PostgreSQL, S3, API servers (`rlmx serve --no-worker`) and workers (`rlmx worker`),
    wait until every API server is ready, create a key for tenant `demo`, print it all."""
    from ..dev.cluster import Cluster, ClusterOptions
    from ..errors import RlmxError

    c = _cluster(folder)
    opts = ClusterOptions(api_servers, workers, base_port, allowed_paths, model, timeout_s)
    try:
        state = c.up(opts, progress=lambda m: err.print(f"[dim]{m}…[/]"))
    except RlmxError as e:
        _fail(e)
        return
    except KeyboardInterrupt:
        err.print("[bold red]rlmx:[/] interrupted; what was started has been stopped")
        sys.exit(1)
    pg, s3 = state["pg"], state["s3"]
    err.print(f"[bold]rlmx dev cluster[/] in {state['dir']}")
    err.print(f"  postgres  {pg['url']}  (data in {pg['folder']})")
    err.print(f"  s3        {s3['endpoint']}  bucket {s3['bucket']} · RLMX_BLOB_URL {state['env']['RLMX_BLOB_URL']}")
    for a in state["api"]:
        err.print(f"  {a['name']:<9} {a['url']}  pid {a['pid']}  log {a['log']}")
    for w in state["workers"]:
        err.print(f"  {w['name']:<9} pid {w['pid']}  log {w['log']}")
    err.print(f"  API key of tenant demo: {state['key']}")
    err.print(
        "[dim]stdout has the variables for this shell's rlmx commands (eval them); "
        f"stop with `rlmx dev cluster down --dir {state['dir']}`[/]"
    )
    click.echo(f"# rlmx dev cluster: API servers {' '.join(a['url'] for a in state['api'])}")
    for line in Cluster.exports(state):
        click.echo(line)


@cluster.command("status")
@click.option("--dir", "folder", type=click.Path(file_okay=False), help=_DIR_HELP)
def status(folder: str | None) -> None:
    """Say which processes are alive and which API servers answer /health/ready (exit 0
    when all are up, else 1)."""
    from ..errors import RlmxError

    c = _cluster(folder)
    try:
        checks = c.status()
    except RlmxError as e:
        _fail(e)
        return
    if not checks:
        click.echo(f"no cluster in {c.dir} (start one with `rlmx dev cluster up --dir {c.dir}`)")
        sys.exit(1)
    for name, ok, detail in checks:
        click.echo(f"{name:<9} {'up  ' if ok else 'DOWN'}  {detail}")
    sys.exit(0 if all(ok for _n, ok, _d in checks) else 1)


@cluster.command("down")
@click.option("--dir", "folder", type=click.Path(file_okay=False), help=_DIR_HELP)
def down(folder: str | None) -> None:
    """Stop workers, API servers, S3 and PostgreSQL; discard the data (S3's lives in memory);
    keep the logs. Idempotent."""
    from ..errors import RlmxError

    c = _cluster(folder)
    try:
        stopped = c.down(progress=lambda m: err.print(f"[dim]{m}…[/]"))
    except RlmxError as e:
        _fail(e)
        return
    click.echo(f"stopped {', '.join(stopped)}" if stopped else f"nothing was running in {c.dir}")


@cluster.command("env")
@click.option("--dir", "folder", type=click.Path(file_okay=False), help=_DIR_HELP)
def env(folder: str | None) -> None:
    """Print the `export` lines of a running cluster again (`eval "$(rlmx dev cluster env)"`)."""
    from ..dev.cluster import Cluster, ClusterError
    from ..errors import RlmxError

    c = _cluster(folder)
    try:
        state = c.read_state()
    except RlmxError as e:
        _fail(e)
        return
    if state is None:
        _fail(ClusterError(f"no cluster in {c.dir}: start one with `rlmx dev cluster up --dir {c.dir}`"))
        return
    click.echo(f"# rlmx dev cluster: API servers {' '.join(a['url'] for a in state.get('api', []))}")
    for line in Cluster.exports(state):
        click.echo(line)
