"""``rlmx mcp``: the MCP server (stdio or streamable HTTP)."""

from __future__ import annotations

import sys

import click
from rich.console import Console

__all__ = ["mcp"]

err = Console(stderr=True, highlight=False, soft_wrap=True)


@click.command("mcp")
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http"]),
    default="stdio",
    show_default=True,
    help="stdio (for a local client) or streamable HTTP at /mcp.",
)
@click.option("--tenant", default="local", show_default=True, help="The tenant whose sessions and executions it uses.")
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP: address to listen on.")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535), help="HTTP: port.")
def mcp(transport: str, tenant: str, host: str, port: int) -> None:
    """Serve rlmx as MCP tools: create_session, list_sessions, ask (progress; sub-calls by the
    client's model through sampling with sub_calls="client"), get_execution, start_runtime,
    run_step, resolve_tools, get_span, verify_citations.

    Over HTTP every request needs `Authorization: Bearer` with a key of TENANT
    (`rlmx keys create --tenant TENANT`) and paths must lie under RLMX_ALLOWED_PATHS."""
    from ..errors import RlmxError
    from ..service.core import Service
    from ..service.mcp_server import build_mcp_server, require_key

    try:
        service = Service(notice=lambda m: err.print(m, markup=False))
    except RlmxError as e:
        err.print(f"[bold red]rlmx:[/] {e}")
        sys.exit(1)
    if transport == "stdio":
        build_mcp_server(service, tenant, transport="stdio").run("stdio")
        return
    import uvicorn

    server = build_mcp_server(service, tenant, transport="http")
    app = require_key(server.streamable_http_app(host=host), service, tenant)
    err.print(f"[dim]rlmx mcp · http://{host}:{port}/mcp · tenant {tenant} · store {service.store.home}[/]")
    uvicorn.run(app, host=host, port=port, log_level="warning")
