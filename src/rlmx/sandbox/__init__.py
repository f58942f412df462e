"""The REPL: model-written code runs in its own process over a lazy ``context``.

Public names: the seam (:class:`REPL`, :class:`ContextSpec`, :class:`ContextDoc`,
:class:`StepResult`, :class:`SpanEvent`, :class:`FinalSignal`, :class:`ToolRequest`,
``ToolResolver``), the runners (:class:`LocalREPL`, :class:`BwrapREPL`) and
:func:`make_repl`, which picks one from :class:`SandboxPolicy` (``RLMX_SANDBOX_*``), and
:class:`Snapshot` (sealed REPL state, to resume an execution in another process). The worker side
(:mod:`.worker`, :mod:`.context`, :mod:`.namespace`, :mod:`.spanlog`) runs inside the REPL
process.

Names are imported lazily so that the REPL process (``python -m rlmx.sandbox.worker``),
which imports this package first, does not pay for pydantic or asyncio at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import (
        REPL,
        ContextDoc,
        ContextSpec,
        FinalSignal,
        SpanEvent,
        StepResult,
        ToolRequest,
        ToolResolver,
    )
    from .bwrap import BwrapREPL
    from .factory import make_repl
    from .local import LocalREPL
    from .policy import SandboxPolicy
    from .snapshot import Snapshot

__all__ = [
    "REPL",
    "BwrapREPL",
    "ContextDoc",
    "ContextSpec",
    "FinalSignal",
    "LocalREPL",
    "SandboxPolicy",
    "Snapshot",
    "SpanEvent",
    "StepResult",
    "ToolRequest",
    "ToolResolver",
    "make_repl",
]

_HOME = {name: ".base" for name in __all__}
_HOME.update(
    LocalREPL=".local", BwrapREPL=".bwrap", make_repl=".factory", SandboxPolicy=".policy", Snapshot=".snapshot"
)


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
