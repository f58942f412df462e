"""The REPL: model-written code runs in its own process over a lazy ``context``.

Public names: the seam (:class:`REPL`, :class:`ContextSpec`, :class:`ContextDoc`,
:class:`StepResult`, :class:`SpanEvent`, :class:`FinalSignal`, :class:`ToolRequest`,
``ToolResolver``) and :class:`LocalREPL`, the process runner. The worker side
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
    from .local import LocalREPL

__all__ = [
    "REPL",
    "ContextDoc",
    "ContextSpec",
    "FinalSignal",
    "LocalREPL",
    "SpanEvent",
    "StepResult",
    "ToolRequest",
    "ToolResolver",
]

_HOME = {name: ".base" for name in __all__}
_HOME["LocalREPL"] = ".local"


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
