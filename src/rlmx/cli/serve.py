"""``rlmx serve`` (the HTTP API) and ``rlmx worker`` (workers of its queue)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import click
from rich.console import Console

__all__ = ["serve", "worker"]

err = Console(stderr=True, highlight=False, soft_wrap=True)


def _notice(message: str) -> None:
    err.print(message, markup=False)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free).")
@click.option("--no-worker", is_flag=True, help="Run no in-process worker (use `rlmx worker` processes).")
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
def serve(host: str, port: int, no_worker: bool, log_level: str) -> None:
    """Serve the HTTP API (FastAPI + uvicorn) over the store in $RLMX_HOME.

    Embedded default: SQLite + local blobs, executions advanced by an in-process worker.
    Keys: `rlmx keys create --tenant T`. Docs: /docs. Settings: docs/service.md."""
    import uvicorn

    from ..errors import RlmxError
    from ..service.app import create_app
    from ..service.core import Service

    try:
        service = Service(notice=_notice)
    except RlmxError as e:
        err.print(f"[bold red]rlmx:[/] {e}")
        sys.exit(1)
    roots = service.settings.allowed_roots()
    err.print(
        f"[dim]rlmx serve · store {service.store.home} · models {', '.join(service.offered)} · "
        f"allowed paths {', '.join(map(str, roots)) or '(none: uploads only)'}"
        f"{' · no in-process worker' if no_worker else ''}[/]"
    )
    from ..service.warmup import warm_imports

    warm_imports()  # no request's first step imports modules or walks them in a full GC
    app = create_app(service, worker=not no_worker)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10)


@click.command()
@click.option("--concurrency", type=click.IntRange(min=1), help="Jobs run at once (default RLMX_WORKER_CONCURRENCY).")
@click.option("--until-idle", is_flag=True, help="Exit when no job is left instead of waiting for more.")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve this worker's Prometheus metrics (as `rlmx serve`'s /metrics) on this port.",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address of the metrics endpoint.")
def worker(concurrency: int | None, until_idle: bool, metrics_port: int | None, metrics_host: str) -> None:
    """Run a worker of the service's queue (ingestion and answerer executions) on the store
    in $RLMX_HOME, beside `rlmx serve --no-worker` or other workers. With --metrics-port, the
    runs of this process are counted and served for scraping (no API key, no tenant data;
    the store's queue gauges too)."""
    from ..errors import RlmxError
    from ..service.core import Service
    from ..service.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        service = Service(notice=_notice)
    except RlmxError as e:
        err.print(f"[bold red]rlmx:[/] {e}")
        sys.exit(1)

    if metrics_port is not None:
        from prometheus_client import start_http_server

        from ..engine.observers import add_observer
        from ..service.metrics import Metrics

        metrics = Metrics(service.meta)
        add_observer(metrics)
        try:
            start_http_server(metrics_port, addr=metrics_host, registry=metrics.registry)
        except OSError as e:
            err.print(
                f"[bold red]rlmx:[/] cannot serve metrics on {metrics_host}:{metrics_port} ({e}); choose another port"
            )
            sys.exit(2)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        w = Worker(service, concurrency=concurrency)
        err.print(f"[dim]rlmx worker {w.id} · store {service.store.home} · concurrency {w.concurrency}[/]")
        await w.run(stop, until_idle=until_idle)
        await service.close_runtimes()

    asyncio.run(main())
