"""The trace viewer (issue 12): one HTML page of an execution tree — the tree with status,
models, budgets and what was spent, a timeline of turns and sub-calls, each turn's
response, code (highlighted), output, observation, error and variables, the sub-calls,
and the answer whose citations open the cited span in its document's text with whether it
verifies.

:mod:`.build` builds the view-model (pure data, :mod:`.model`) from a trace, :mod:`.source` reads the
trace and the citation windows from the store, :mod:`.render` renders the page (server-side
HTML, a little JS, no CDN), :mod:`.server` serves it for ``rlmx view``; the service serves
it at ``/ui/executions/{id}`` (:mod:`rlmx.service.routes.ui`).
"""

from __future__ import annotations

from .build import build_view
from .model import PageView
from .render import ASSETS, asset, render_page
from .source import citation_windows, latest_execution, load_page

__all__ = [
    "ASSETS",
    "PageView",
    "asset",
    "build_view",
    "citation_windows",
    "latest_execution",
    "load_page",
    "render_page",
]
