"""Restoring a sealed snapshot into a fresh REPL process (after a crash, a timeout, or to
resume an execution), bounded: unpickling runs model-made code (a ``__reduce__`` can call
anything), so the variables are sent one at a time and each answer is awaited for at most
:func:`restore_limit` seconds, the whole restore for at most the step timeout. A variable
whose restore fails, runs past its limit, kills the process or gets a malformed answer is
dropped from the snapshot and named; when the process had to be stopped, a fresh one
restores the variables before it again and goes on with the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .protocol import Broken, Channel, Violation
from .snapshot import Sealer, Snapshot, SnapshotError

__all__ = ["RESTORE_BYTES_PER_S", "RESTORE_VAR_S", "Restored", "restore_limit", "restore_snapshot"]

RESTORE_VAR_S = 5.0  # most seconds one small variable may take to restore (also step_timeout_s / 4)
RESTORE_BYTES_PER_S = 50 << 20  # and one more second per this many bytes of it


@dataclass
class Restored:
    """The outcome of :func:`restore_snapshot`: ``note`` for the model, ``dropped`` (notes
    naming the variables that could not be restored; empty when none), ``snapshot`` (the
    snapshot to keep: without the dropped variables; None when it was refused) and
    ``variables`` (the user variables now in the namespace, or None when unchanged)."""

    note: str
    dropped: list[str] = field(default_factory=list)
    snapshot: Snapshot | None = None
    variables: list[str] | None = None


def restore_limit(step_timeout_s: float, size: int) -> float:
    """Seconds one variable of ``size`` bytes may take to restore: a quarter of the step
    timeout (at most :data:`RESTORE_VAR_S`) plus a second per :data:`RESTORE_BYTES_PER_S`."""
    return min(step_timeout_s / 4, RESTORE_VAR_S) + size / RESTORE_BYTES_PER_S


async def restore_snapshot(
    snap: Snapshot | None,
    how: str,
    *,
    sealer: Sealer,
    step_timeout_s: float,
    channel: Callable[[], Channel],
    respawn: Callable[[], Awaitable[None]],
) -> Restored:
    """Restore ``snap`` into the process behind ``channel()`` (see module doc); ``how`` says
    what happened to the REPL ("restarted", "resumed"...), for the note. ``respawn`` stops
    the process and starts a fresh one (after which ``channel()`` is its channel). Raises
    ReplError only when no process can be started."""
    if snap is None:
        return Restored(f"the REPL was {how}; there was no saved state to restore")
    try:
        sealer.verify(snap)
    except SnapshotError as e:
        return Restored(f"the REPL was {how}; its saved state was NOT restored: {e}; it starts empty")
    lost = ""
    if snap.unsaved:
        lost = "; lost (they could not be saved): " + ", ".join(f"{k} ({v})" for k, v in sorted(snap.unsaved.items()))
    pending = sorted(snap.vars)
    if not pending:
        return Restored(f"the REPL was {how}; no variables to restore{lost}", snapshot=snap)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + step_timeout_s
    restored: list[str] = []
    failed: dict[str, str] = {}
    while pending:
        name, data = pending[0], snap.vars[pending[0]]
        left = deadline - loop.time()
        if left <= 0:
            for n in pending:
                failed[n] = f"the restore ran past the step timeout of {step_timeout_s:g} s"
            break
        limit = min(left, restore_limit(step_timeout_s, len(data)))
        reason = None
        try:
            ch = channel()
            await ch.send({"type": "restore", "vars": [[name, len(data)]]}, [data])
            msg = await asyncio.wait_for(ch.recv(), limit)
            if msg.get("type") != "restored":
                raise Violation("unexpected answer to restore")
        except TimeoutError:
            reason = f"its restore ran past {limit:.3g} s and was stopped"
        except Violation as e:
            reason = f"the REPL process broke the protocol restoring it: {e}"
        except (Broken, OSError) as e:
            reason = f"the REPL process died restoring it ({type(e).__name__})"
        pending.pop(0)
        if reason is not None:  # the process is stopped: a fresh one restores the others
            failed[name] = reason
            await respawn()
            pending, restored = restored + pending, []
            continue
        # the answer comes from a process that has just unpickled model-made bytes: untrusted
        raw_restored, raw_failed = msg.get("restored"), msg.get("failed")
        if isinstance(raw_restored, list) and name in raw_restored:
            restored.append(name)
        else:
            why = raw_failed.get(name) if isinstance(raw_failed, dict) else None
            failed[name] = str(why)[:500] if why is not None else "not restored"
    if failed:  # not in the namespace any more: not in the snapshot either
        snap = sealer.apply(snap, snap.turn, [], sorted(failed), snap.unsaved)
    restored.sort()
    note = f"the REPL was {how} and restored to its state after turn {snap.turn}: {', '.join(restored) or 'nothing'}"
    dropped = []
    if failed:
        note += "; not restored: " + ", ".join(sorted(failed))
        items = ", ".join(f"{k} ({v})" for k, v in sorted(failed.items()))
        dropped = [
            f"[rlmx: dropped from the REPL's state because they could not be restored: {items}; "
            "define them again if you need them]"
        ]
    variables = [n for n in restored if not n.startswith("_")]
    return Restored(note + lost, dropped, snap, variables)
