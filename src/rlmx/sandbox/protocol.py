"""The orchestrator's side of the REPL protocol (the worker's side: :mod:`rlmx.sandbox.worker`):
one JSON object per line over the inherited socketpair, optionally followed by raw bytes
(``_bytes``: a restore's or a step result's snapshot).

Everything the REPL process sends is untrusted: a line is capped (:func:`line_limit`), raw
bytes come only with a step result and up to :func:`bytes_limit`, and a malformed or
oversized message raises :class:`Violation` before anything over those limits is buffered —
the REPL is then stopped and restored."""

from __future__ import annotations

import asyncio
import collections
import json
from typing import Any

from .base import StepResult

__all__ = ["Broken", "Channel", "Violation", "bytes_limit", "describe_exit", "line_limit", "parse_delta", "step_result"]

_LINE_SLACK = 8 << 20  # a protocol line may be 6 bytes per output character (JSON escapes) + this
_BYTES_SLACK = 1 << 20  # raw snapshot bytes accepted beyond the snapshot limit
_MAX_SPAN_EVENTS = 200_000  # span log entries of one step result (the REPL logs at most 150,000)
_ENDED_STEPS = 64  # step tokens remembered per channel (a late result comes for a recent step)


class Broken(Exception):
    """The worker died or broke the protocol during a step."""


class Violation(Broken):
    """The worker sent a message it must not send (oversized, malformed, unexpected bytes):
    it is stopped."""


def line_limit(output_cap_chars: int) -> int:
    """Longest protocol line accepted from the REPL, in bytes: a step result's output of
    ``output_cap_chars`` characters at the worst JSON escaping (6 bytes a character) plus
    slack for the rest of the message."""
    return 6 * max(0, output_cap_chars) + _LINE_SLACK


def bytes_limit(snapshot_max_mb: int | None) -> int:
    """Most raw bytes accepted with one message (a step's snapshot delta), and the largest
    sealed snapshot kept: the snapshot limit (MB; None: snapshots off, so 0) plus slack."""
    return (snapshot_max_mb << 20) + _BYTES_SLACK if snapshot_max_mb is not None else 0


class Channel:
    """Framed messages over one REPL process's socket (see module doc); ``line_max`` and
    ``bytes_max``: the limits of :func:`line_limit` and :func:`bytes_limit`, in bytes.
    ``ended_steps``: the step tokens of the last steps run over it (see
    :mod:`rlmx.sandbox.steps`), so that a late result of one of them is recognised."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line_max: int, bytes_max: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.line_max = line_max
        self.bytes_max = bytes_max
        self.ended_steps: collections.deque[str] = collections.deque(maxlen=_ENDED_STEPS)

    async def send(self, msg: dict[str, Any], data: list[bytes] | None = None) -> None:
        """Send ``msg`` (a JSON object) and then the raw ``data`` blobs, announced in
        ``_bytes``. Raises OSError (or RuntimeError) when the process is gone."""
        if data:
            msg = {**msg, "_bytes": sum(len(d) for d in data)}
        self.writer.write(json.dumps(msg, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n")
        for d in data or ():
            self.writer.write(d)
        await self.writer.drain()

    async def recv(self) -> dict[str, Any]:
        """The next message from the REPL process, with its raw bytes in ``_data``. Raises
        :class:`Broken` when it exited or sent garbage, :class:`Violation` when the message
        is over a limit (a line longer than ``line_max``; raw bytes other than a step
        result's snapshot, or more than ``bytes_max``) — nothing over those limits is ever
        buffered."""
        try:
            line = await self.reader.readline()
        except (ValueError, asyncio.LimitOverrunError) as e:
            raise Violation(f"it sent a message longer than the limit of {self.line_max:,} bytes") from e
        except OSError as e:
            raise Broken(f"unreadable message from the REPL process: {e}") from e
        if not line:
            raise Broken("the REPL process exited")
        try:
            msg = json.loads(line.decode("utf-8", "surrogatepass"))
        except (ValueError, RecursionError) as e:
            raise Violation(f"malformed message from the REPL process: {str(e)[:200]}") from e
        if not isinstance(msg, dict):
            raise Violation("malformed message from the REPL process")
        n = msg.pop("_bytes", None)
        if n:
            limit = self.bytes_max
            if msg.get("type") != "step_result":
                raise Violation(f"it sent raw bytes with a {str(msg.get('type'))[:40]!r} message")
            if not isinstance(n, int) or isinstance(n, bool) or n < 0 or n > limit:
                raise Violation(f"it announced {str(n)[:40]} raw bytes (the snapshot limit allows {limit:,})")
            try:
                msg["_data"] = await self.reader.readexactly(n)
            except (asyncio.IncompleteReadError, OSError) as e:
                raise Broken(f"truncated message from the REPL process: {e}") from e
        return msg


def step_result(res: Any) -> StepResult:
    """Validate a step result from the REPL process (untrusted: the shape is checked before
    pydantic sees it, so a crafted one costs little and says little). Raises Violation."""
    if not isinstance(res, dict):
        raise Violation("malformed step result")
    span_log, variables = res.get("span_log") or [], res.get("variables") or []
    if not isinstance(span_log, list) or len(span_log) > _MAX_SPAN_EVENTS:
        raise Violation("malformed step result: span log")
    if not isinstance(variables, list) or not all(isinstance(v, str) for v in variables):
        raise Violation("malformed step result: variables")
    try:
        return StepResult.model_validate(res)
    except ValueError as e:  # pydantic's ValidationError; its text could be huge
        count = e.error_count() if hasattr(e, "error_count") else 1
        raise Violation(f"malformed step result ({count} validation errors)") from None


def parse_delta(snap: dict[str, Any]) -> tuple[list[tuple[str, bytes]], list[str], dict[str, str]]:
    """A step result's snapshot delta (``{"changed": [[name, size]...], "deleted": [...],
    "unsaved": {name: reason}, "_data": bytes}``) as ``(changed (name, bytes) pairs, deleted
    names, unsaved {name: reason (500 characters at most)})``. Raises Violation when it is
    malformed or its sizes do not match its bytes."""
    data = snap.get("_data") or b""
    changed_meta, deleted, raw_unsaved = (
        snap.get("changed") or [],
        snap.get("deleted") or [],
        snap.get("unsaved") or {},
    )
    if not (isinstance(changed_meta, list) and isinstance(deleted, list) and isinstance(raw_unsaved, dict)):
        raise Violation("malformed snapshot")
    changed, pos = [], 0
    for item in changed_meta:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise Violation("malformed snapshot")
        size = item[1]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or pos + size > len(data):
            raise Violation("malformed snapshot: sizes do not match its bytes")
        changed.append((item[0], data[pos : pos + size]))
        pos += size
    if pos != len(data) or not all(isinstance(n, str) for n in deleted):
        raise Violation("malformed snapshot: sizes do not match its bytes")
    return changed, deleted, {str(k): str(v)[:500] for k, v in raw_unsaved.items()}


def describe_exit(info: dict[str, Any]) -> str:
    """``"killed by signal N"``, ``"exit status N"`` or ``"exit status unknown"`` for the
    exit information of :meth:`rlmx.sandbox.launch.Launched.stop`."""
    if info.get("signal"):
        return f"killed by signal {info['signal']}"
    if info.get("status") is not None:
        return f"exit status {info['status']}"
    return "exit status unknown"
