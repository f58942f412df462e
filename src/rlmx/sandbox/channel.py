"""The REPL process's end of the orchestrator socket: JSON lines (one UTF-8 JSON object per
``\\n``-terminated line, lone surrogates passed as ``surrogatepass``), a message with
``"_bytes": n`` followed by ``n`` raw bytes. :class:`Channel` routes ``tool_result``
replies to the thread waiting for them; the messages themselves are
:mod:`rlmx.sandbox.worker`'s.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
from collections.abc import Callable
from typing import Any

from .namespace import BudgetExceeded, ToolError

__all__ = ["Channel", "read_message", "reply_value"]


class Channel:
    """JSON lines over the socket: a reader thread routes ``tool_result``s to the waiting
    caller and everything else to :attr:`inbox`; :meth:`send` is thread-safe. A message
    with ``"_bytes": n`` carries ``n`` raw bytes after its line, as ``msg["_data"]``."""

    def __init__(self, sock: socket.socket, rfile: Any = None) -> None:
        self.sock = sock
        self.rfile = rfile if rfile is not None else sock.makefile("rb")
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._waiting: dict[str, list[Any]] = {}  # id -> [Event, message]
        self._closed = False
        threading.Thread(target=self._read_loop, name="rlmx-channel", daemon=True).start()

    def _read_loop(self) -> None:
        try:
            while True:
                msg = read_message(self.rfile)
                if msg is None:
                    break
                if msg.get("type") == "tool_result":
                    with self._lock:
                        slot = self._waiting.pop(str(msg.get("id")), None)
                    if slot is not None:
                        slot[1] = msg
                        slot[0].set()
                else:
                    self.inbox.put(msg)
        except (OSError, ValueError):
            pass
        with self._lock:
            self._closed = True
            slots, self._waiting = list(self._waiting.values()), {}
        for slot in slots:
            slot[0].set()
        self.inbox.put({"type": "eof"})

    def send(self, msg: dict[str, Any], data: list[bytes] | None = None) -> None:
        if data:
            msg = {**msg, "_bytes": sum(len(d) for d in data)}
        line = json.dumps(msg, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"
        with self._send_lock:
            self.sock.sendall(line)
            for d in data or ():
                self.sock.sendall(d)

    def post(self, kind: str, rid: str, payload: dict[str, Any]) -> list[Any]:
        """Send the tool request ``{kind, id: rid, payload}`` without waiting; returns its slot
        ``[threading.Event, reply or None]``, which the reader thread fills and sets (None
        when the orchestrator went away). Raises TypeError when the payload is not JSON,
        ToolError when the orchestrator is gone."""
        slot: list[Any] = [threading.Event(), None]
        with self._lock:
            if self._closed:
                raise ToolError(f"{kind}: the orchestrator is gone")
            self._waiting[rid] = slot
        try:
            self.send({"type": "tool_request", "id": rid, "kind": kind, "payload": payload})
        except (TypeError, ValueError) as e:
            with self._lock:
                self._waiting.pop(rid, None)
            raise TypeError(f"{kind}: arguments must be JSON values: {e}") from None
        return slot

    def request(self, kind: str, rid: str, payload: dict[str, Any]) -> Any:
        """Send a tool request and block until its result; raise its error inside the code."""
        slot = self.post(kind, rid, payload)
        slot[0].wait()
        return reply_value(kind, slot[1])


def reply_value(kind: str, msg: dict[str, Any] | None, on_budget: Callable[[str], None] | None = None) -> Any:
    """The value of a ``tool_result`` reply. Raises ToolError when the orchestrator is gone
    (``msg`` None) or the request failed, BudgetExceeded (after ``on_budget(message)``) when a
    budget of the tree is spent."""
    if msg is None:
        raise ToolError(f"{kind}: the orchestrator is gone")
    if "error" in msg:
        if msg.get("error_type") == "BudgetExceededError":
            text = f"BudgetExceededError: {msg['error']}"
            if on_budget is not None:
                on_budget(text)
            raise BudgetExceeded(text)
        raise ToolError(f"{kind} failed: {msg['error']}")
    return msg.get("value")


def read_message(rfile: Any) -> dict[str, Any] | None:
    """One message from the buffered socket file (None at EOF); raises ValueError."""
    line = rfile.readline()
    if not line:
        return None
    msg = json.loads(line.decode("utf-8", "surrogatepass"))
    if not isinstance(msg, dict):
        raise ValueError("malformed message")
    n = msg.get("_bytes")
    if n:
        data = rfile.read(int(n))
        if len(data) != int(n):
            return None
        msg["_data"] = data
    return msg
