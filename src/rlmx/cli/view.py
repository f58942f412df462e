"""``rlmx view``: the trace viewer of an execution, served on 127.0.0.1 or written to one
self-contained HTML file (``--out``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from ..errors import NotFoundError, RlmxError

__all__ = ["view"]

err = Console(stderr=True, highlight=False, soft_wrap=True)


@click.command()
@click.argument("execution_id", required=False)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write one self-contained HTML file (no network needed to open it) instead of serving.",
)
@click.option(
    "--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="Port on 127.0.0.1 (0: any free)."
)
def view(execution_id: str | None, out: Path | None, port: int) -> None:
    """Show the trace of EXECUTION_ID (default: the latest) in a browser: prints the URL of
    a page served on 127.0.0.1 until Ctrl-C, or writes it to --out FILE.html."""
    from ..store import open_store
    from ..viewer import latest_execution, load_page, render_page

    try:
        store = open_store()
        eid = execution_id or latest_execution(store)
        page = load_page(store, eid)  # an unknown id fails here, before anything is served
    except RlmxError as e:
        hint = "; `rlmx executions list` shows the ids" if execution_id and isinstance(e, NotFoundError) else ""
        err.print(f"[bold red]rlmx:[/] {escape(str(e))}{hint}", markup=True)
        sys.exit(1)
    if out is not None:
        try:
            out.write_text(render_page(page), encoding="utf-8")
        except OSError as e:
            raise click.UsageError(f"cannot write {out}: {e.strerror or e}") from None
        click.echo(f"wrote {out} (execution {eid})")
        return
    from ..viewer.server import bind, serve, viewer_app

    try:
        sock = bind(port)
    except OSError as e:
        raise click.UsageError(f"cannot listen on 127.0.0.1:{port}: {e.strerror or e}; try another --port") from None
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/executions/{eid}"
    click.echo(url)
    sys.stdout.flush()
    err.print("[dim]serving the trace viewer; Ctrl-C to stop[/]")
    try:
        serve(viewer_app(store, eid), sock)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
