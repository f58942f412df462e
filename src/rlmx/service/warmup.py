"""Warming a serving process before its first job or request: the modules an execution
imports on first use are imported, then everything alive is frozen out of the garbage
collector's reach (``gc.freeze``), so no job's first turn holds the event loop for an import
or a full collection. Used by ``rlmx worker`` (:mod:`.worker`) and ``rlmx serve``."""

from __future__ import annotations

import gc

__all__ = ["WARM_IMPORTS", "warm_imports"]


WARM_IMPORTS = (
    "rlmx.sandbox.bwrap",
    "rlmx.sandbox.local",
    "rlmx.engine.resume",
    "rlmx.engine.verify",
    "rlmx.lm.openai_client",
    "aiohttp",
    "aiohttp.client_proto",
    "aiohttp.http_parser",
    "certifi",
)
"""Modules a job imports on first use: imported before the first job, in a thread, so no
job's first turn holds the event loop for an import."""


def warm_imports() -> None:
    """Import :data:`WARM_IMPORTS` (those installed), then freeze what is alive (see below)."""
    import importlib

    for name in WARM_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    try:  # the TLS context the HTTP pools load on first use (certificates: ≈ 20 ms)
        from rlmx.lm._chat_http import _ssl_context

        _ssl_context()
    except ImportError:
        pass
    # The modules loaded above are hundreds of thousands of long-lived objects: a full
    # garbage collection walking them holds the event loop for 0.1-0.3 s. Collect once here,
    # then move everything alive to the permanent generation (gc.freeze), so later
    # collections only walk the objects jobs create.
    gc.collect()
    gc.freeze()
