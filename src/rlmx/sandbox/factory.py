"""``make_repl``: the REPL the sandbox policy asks for (``RLMX_SANDBOX_RUNNER``)."""

from __future__ import annotations

from .base import REPL, ContextSpec
from .policy import SandboxPolicy
from .snapshot import Snapshot

__all__ = ["make_repl"]


def make_repl(
    spec: ContextSpec,
    *,
    policy: SandboxPolicy | None = None,
    step_timeout_s: float = 120,
    output_cap_chars: int = 2_000_000,
    schema_fields: list[str] | None = None,
    count_tool_time: bool = False,
    snapshot: Snapshot | None = None,
) -> REPL:
    """A :class:`~rlmx.sandbox.local.LocalREPL` or :class:`~rlmx.sandbox.bwrap.BwrapREPL`
    over ``spec`` (``policy`` default: :class:`SandboxPolicy` from ``RLMX_SANDBOX_*``).
    ``snapshot``: resume from a sealed :class:`Snapshot` (e.g. ``Snapshot.from_bytes``)."""
    policy = policy if policy is not None else SandboxPolicy()
    from .bwrap import BwrapREPL
    from .local import LocalREPL

    cls: type[LocalREPL] = BwrapREPL if policy.runner == "bwrap" else LocalREPL
    return cls(
        spec,
        policy=policy,
        step_timeout_s=step_timeout_s,
        output_cap_chars=output_cap_chars,
        schema_fields=schema_fields,
        count_tool_time=count_tool_time,
        snapshot=snapshot,
    )
