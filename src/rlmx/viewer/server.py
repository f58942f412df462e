"""The local server of ``rlmx view``: the page of any execution of this store at
``/executions/{id}`` (``/`` redirects to the one asked for), its assets at ``/static/``.

It binds 127.0.0.1 only and answers only requests whose ``Host`` is that address or
``localhost`` (a web page cannot reach it through DNS rebinding); there is no key: it is
the user's own store, on the user's own machine.
"""

from __future__ import annotations

import asyncio
import socket

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ..errors import NotFoundError
from ..store import Store
from .render import ASSETS, asset, render_page
from .source import load_page

__all__ = ["PAGE_HEADERS", "bind", "serve", "viewer_app"]

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""Headers of every viewer page: its scripts and styles come only from the server."""


def viewer_app(store: Store, default_id: str) -> Starlette:
    """The ASGI app serving ``store``'s executions; ``/`` shows ``default_id``."""

    async def index(_r: Request) -> Response:
        return RedirectResponse(f"/executions/{default_id}", status_code=303)

    async def page(r: Request) -> Response:
        eid = r.path_params["execution_id"]
        try:
            view = await asyncio.to_thread(load_page, store, eid)
        except NotFoundError as e:
            return PlainTextResponse(f"not found: {e}", status_code=404, headers=PAGE_HEADERS)
        html = await asyncio.to_thread(render_page, view, asset_base="/static")
        return HTMLResponse(html, headers=PAGE_HEADERS)

    async def static(r: Request) -> Response:
        name = r.path_params["name"]
        if name not in ASSETS:
            return PlainTextResponse("not found", status_code=404)
        return Response(asset(name), media_type=ASSETS[name], headers={"X-Content-Type-Options": "nosniff"})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/executions/{execution_id}", page),
            Route("/static/{name}", static),
        ],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])],
    )


def bind(port: int = 0) -> socket.socket:
    """A listening TCP socket on 127.0.0.1:``port`` (0: any free port). Raises OSError
    when the port is taken."""
    # IPPROTO_TCP: asyncio sets TCP_NODELAY only then (else each response waits ≈ 40 ms)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


def serve(app: Starlette, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` (already listening: a client may connect at once) until
    interrupted (Ctrl-C or SIGTERM)."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off")).run(sockets=[sock])
