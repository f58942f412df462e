"""The service (issue 4): the engine behind an HTTP API and an MCP server.

Modules: :mod:`.settings` (``RLMX_`` variables of the service), :mod:`.auth` (API keys,
tenants, rate limits), :mod:`.core` (:class:`~rlmx.service.core.Service`: sessions,
executions, runtime mode, spans, citations — shared by HTTP and MCP — composed of
:mod:`.base`, :mod:`.paths`, :mod:`.sessions`, :mod:`.executions`, :mod:`.jobs`,
:mod:`.runtimes` and :mod:`.spans`; errors in :mod:`.errors`, lease-fenced writes in
:mod:`.leases`), :mod:`.worker` (the work queue's workers: lease + heartbeat, resume),
:mod:`.app` (the FastAPI app: middleware and error handlers, with :mod:`.schemas`,
:mod:`.deps` and one router per resource in :mod:`.routes`), :mod:`.mcp_server` (the MCP
server). Design notes: ``docs/service.md``; API: ``docs/api.md``.
"""

from __future__ import annotations

__all__: list[str] = []
