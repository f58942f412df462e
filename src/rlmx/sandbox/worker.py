"""The REPL process: ``python -m rlmx.sandbox.worker FD``.

Runs model-written code over a lazy ``context`` and talks to the orchestrator
(:class:`rlmx.sandbox.local.LocalREPL`) over the inherited socket ``FD`` — never over
stdout, which the code owns. It imports neither pydantic nor the orchestrator.

Protocol: JSON lines (one UTF-8 JSON object per ``\\n``-terminated line; lone surrogates
pass through as ``surrogatepass``); a message with ``"_bytes": n`` is followed by ``n`` raw
bytes (snapshots). ``→`` orchestrator to worker, ``←`` worker to orchestrator::

    → {"type": "init", "spec": ContextSpec-dict, "output_cap": int (characters),
       "schema_fields": [str] | null, "env": {str: str} | null, "cwd": str | null,
       "sandbox": {...} (see rlmx.sandbox._layers),
       "outside": {layer: status} (applied by the launcher), "snapshot_max_bytes": int}
    ← {"type": "ready", "pid": int, "layers": {layer: {"active": bool, "detail": str}}}
      or {"type": "fatal", "error": str} (then exit 2)
    → {"type": "restore", "vars": [[name, size], ...], "_bytes": n} + the variables' bytes
    ← {"type": "restored", "restored": [name], "failed": {name: reason}}
    → {"type": "run", "code": str, "turn": int, "cpu_s": float | null, "step": str,
       "tools": [{"name", "signature", "doc"}] (optional: custom tools, docs/repl.md)}
        ← {"type": "tool_request", "id": str, "kind": "llm_query"|"llm_query_batched"|
           "rlm_query"|"search"|"tool", "payload": {...}}  (ToolRequest's payloads; any
                                               number, possibly several outstanding when code
                                               uses threads or futures)
        → {"type": "tool_result", "id": str, "value": Any}
          or {"type": "tool_result", "id": str, "error": str,
              "error_type": "BudgetExceededError" | "ToolError"}
    ← {"type": "step_result", "step": str (the run's), "result": StepResult-dict,
       "snapshot": {"changed": [[name, size]], "deleted": [name], "unsaved": {name: reason}}
                   | null, "_bytes": n} + the changed variables' bytes
    → {"type": "shutdown"}                      (or EOF) → exit 0

The layers are applied before the first thread starts and before the context is opened;
with ``sandbox.hardened`` a missing required layer ends the process with ``fatal``.
A ``tool_result`` error raises :class:`~rlmx.sandbox.namespace.ToolError` (a RuntimeError)
inside the code, or :class:`~rlmx.sandbox.namespace.BudgetExceeded` (a BaseException that
ends the step). Request ids are sub-call ids ``t{turn}.{n}`` (``t{turn}.{a}..{b}`` for a
batch), ``t{turn}.s{n}`` for searches (``context.search``: the process has no access to the
store's search index; the orchestrator answers for this context only). Wall-clock limits
are the orchestrator's: it kills this process; the CPU limit of a step (``cpu_s``) is a soft
``RLIMIT_CPU`` whose ``SIGXCPU`` ends the step with an error.
"""

from __future__ import annotations

import ast
import collections
import io
import json
import linecache
import os
import resource
import signal
import socket
import sys
import threading
import time
import traceback
from collections import deque
from typing import Any

from . import compat_answer
from .channel import Channel, read_message
from .context import context_state, open_context
from .namespace import FinalAnswer, ReplSignal, ReplTools, user_variables
from .spanlog import SpanLog
from .tools_repl import ExtraTools

__all__ = ["CappedOutput", "CpuLimitExceeded", "main", "serve"]


class CpuLimitExceeded(ReplSignal):
    """The step used more CPU time than its limit (``SIGXCPU``)."""


class CappedOutput(io.TextIOBase):
    """A text sink keeping the first ``cap // 2`` and the last ``cap - cap // 2`` characters
    written, with a marker saying how many characters were dropped between them."""

    def __init__(self, cap: int) -> None:
        self.cap = max(0, cap)
        self._head: list[str] = []
        self._head_len = 0
        self._tail: deque[str] = deque()
        self._tail_len = 0
        self.dropped = 0
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        n = len(s)
        with self._lock:
            room = self.cap // 2 - self._head_len
            if room > 0:
                self._head.append(s[:room])
                self._head_len += min(room, n)
                s = s[room:]
            if s:
                self._tail.append(s)
                self._tail_len += len(s)
                excess = self._tail_len - (self.cap - self.cap // 2)
                while excess > 0:
                    first = self._tail[0]
                    if len(first) <= excess:
                        self._tail.popleft()
                        cut = len(first)
                    else:
                        self._tail[0] = first[excess:]
                        cut = excess
                    self._tail_len -= cut
                    self.dropped += cut
                    excess -= cut
        return n

    def getvalue(self) -> str:
        with self._lock:
            mid = ""
            if self.dropped:
                mid = (
                    f"\n[... {self.dropped:,} characters dropped by the REPL output cap of "
                    f"{self.cap:,} characters ...]\n"
                )
            return "".join(self._head) + mid + "".join(self._tail)


_TB_HEAD, _TB_TAIL = 8, 24


def _format_error(e: BaseException) -> str:
    """Traceback limited to frames of the model's code (``<repl-N>``), type and message; of a
    deep recursion, the first and last frames only (extracting a million frames' source
    lines would take longer than the step)."""
    head: list[traceback.FrameSummary] = []
    tail: collections.deque[traceback.FrameSummary] = collections.deque(maxlen=_TB_TAIL)
    skipped = 0
    tb = e.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename.startswith("<repl"):
            if len(head) < _TB_HEAD:
                head.append(traceback.FrameSummary(code.co_filename, tb.tb_lineno, code.co_name))
            else:
                if len(tail) == _TB_TAIL:
                    skipped += 1
                tail.append(traceback.FrameSummary(code.co_filename, tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    lines = []
    if head:
        lines = ["Traceback (most recent call last):\n", *traceback.format_list(head)]
        if skipped:
            lines.append(f"  [... {skipped} frames omitted ...]\n")
        lines += traceback.format_list(list(tail))
    lines += traceback.format_exception_only(type(e), e)
    return "".join(lines).rstrip()


def _on_sigxcpu(signum: int, frame: Any) -> None:
    raise CpuLimitExceeded("the step exceeded its CPU time limit")


class Worker:
    """Runs steps in one persistent namespace (see module doc)."""

    def __init__(
        self,
        spec: dict[str, Any],
        channel: Channel,
        output_cap: int,
        schema_fields: list[str] | None,
        snapshot_max_bytes: int | None = None,
    ) -> None:
        self.log = SpanLog()
        self.context = open_context(spec, self.log)
        self.tools = ReplTools(self.context, self.log, channel.request, schema_fields)
        self.extra = ExtraTools(self.tools, channel)  # futures, rlm_query_batched, custom tools
        self.injected = {**self.tools.names(), **self.extra.names()}
        self.injected.update(compat_answer.seed())  # the rlms `answer` dict (compat_answer)
        self.ns: dict[str, Any] = {"__name__": "__repl__", "__builtins__": __builtins__}
        self.ns.update(self.injected)
        self.output_cap = output_cap
        self.persister = None
        if snapshot_max_bytes:
            from ._persist import Persister

            self.persister = Persister(
                self.ns, self.context, context_state(self.context), self.injected, snapshot_max_bytes
            )

    def run(self, code: str, turn: int, cpu_s: float | None = None) -> dict[str, Any]:
        """Run ``code`` as step ``turn``; returns a StepResult dict. Never raises."""
        t0 = time.monotonic()
        self.log.begin_step(turn)
        for k, v in self.injected.items():
            self.ns.setdefault(k, v)
        self.tools.begin_step(turn, self.ns)
        out = CappedOutput(self.output_cap)
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = out
        error: str | None = None
        final: dict[str, Any] | None = None
        limited = cpu_s is not None and _cpu_limit(cpu_s)
        try:
            final = self._exec(code, f"<repl-{turn}>")
        except FinalAnswer as f:
            final = f.signal
        except CpuLimitExceeded:
            error = f"CpuLimitExceeded: the step used more than its CPU time limit of {cpu_s:g} s and was stopped"
        except BaseException as e:  # the model's errors, SystemExit and budget stops included
            error = _format_error(e)
        finally:
            if limited:
                _cpu_limit(None)
            sys.stdout, sys.stderr = saved
        if final is None and self.tools.final is not None:  # FINAL swallowed by a bare except
            final = self.tools.final
        final = final or compat_answer.take_final(self.ns)  # answer["ready"] = True
        if self.tools.budget_error is not None and final is None and error is None:
            error = self.tools.budget_error
        if final is not None:
            error = None
        return {
            "stdout": out.getvalue(),
            "error": error,
            "final": final,
            "span_log": self.log.drain(),
            "duration_s": time.monotonic() - t0,
            "timed_out": False,
            "variables": user_variables(self.ns, self.injected),
        }

    def snapshot(self) -> tuple[dict[str, Any] | None, list[bytes]]:
        if self.persister is None:
            return None, []
        return self.persister.delta()

    def restore(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self.persister is None:
            return {"type": "restored", "restored": [], "failed": {"*": "snapshots are disabled"}}
        data: bytes = msg.get("_data") or b""
        items, pos = [], 0
        for name, size in msg.get("vars") or []:
            items.append((str(name), data[pos : pos + int(size)]))
            pos += int(size)
        restored, failed = self.persister.restore(items)
        return {"type": "restored", "restored": restored, "failed": failed}

    def _exec(self, code: str, filename: str) -> dict[str, Any] | None:
        tree = ast.parse(code, filename, "exec")
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        last: ast.Expression | None = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body[-1].value)
            tree.body.pop()
        exec(compile(tree, filename, "exec"), self.ns)
        if last is not None:
            value = eval(compile(last, filename, "eval"), self.ns)
            if value is not None:
                print(repr(value))
        return None


def _cpu_limit(seconds: float | None) -> bool:
    """Set the soft CPU limit to ``seconds`` from now (None: back to the hard limit)."""
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        if seconds is None:
            resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
            return True
        ru = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(ru.ru_utime + ru.ru_stime + max(1.0, seconds) + 0.999)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        return True
    except (OSError, ValueError):
        return False


def serve(fd: int, *, outside: dict[str, Any] | None = None) -> int:
    """Serve the protocol on the connected socket ``fd``. Returns the exit status.

    Reads ``init`` before any thread starts, applies the isolation layers it asks for
    (:mod:`rlmx.sandbox._layers`), then opens the context and answers ``ready``.
    ``outside``: statuses of layers the launcher applied (merged into ``ready``)."""
    sock = socket.socket(fileno=fd)
    rfile = sock.makefile("rb")

    def send(msg: dict[str, Any]) -> None:
        sock.sendall(json.dumps(msg, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n")

    try:
        init = read_message(rfile)
    except (OSError, ValueError):
        return 2
    if init is None or init.get("type") != "init":
        return 2
    layers: dict[str, Any] = {}
    try:
        if init.get("env") is not None:  # forked from the zygote: this execution's environment
            os.environ.clear()
            os.environ.update({str(k): str(v) for k, v in init["env"].items()})
        if init.get("cwd"):
            os.chdir(init["cwd"])
        if init.get("sandbox") is not None:
            from . import _layers

            layers = _layers.apply(init["sandbox"], init["spec"], {**(init.get("outside") or {}), **(outside or {})})
    except Exception as e:
        send({"type": "fatal", "error": f"{type(e).__name__}: {e}"})
        return 2
    signal.signal(signal.SIGXCPU, _on_sigxcpu)
    channel = Channel(sock, rfile)
    try:
        worker = Worker(
            init["spec"],
            channel,
            int(init.get("output_cap", 2_000_000)),
            init.get("schema_fields"),
            init.get("snapshot_max_bytes"),
        )
    except Exception as e:
        channel.send({"type": "fatal", "error": f"{type(e).__name__}: {e}"})
        return 2
    channel.send({"type": "ready", "pid": os.getpid(), "layers": layers})
    while True:
        msg = channel.inbox.get()
        kind = msg.get("type")
        if kind == "run":
            worker.extra.define(msg.get("tools"), worker.injected, worker.ns)  # custom tools' stubs
            cpu = msg.get("cpu_s")
            result = worker.run(str(msg["code"]), int(msg.get("turn", 0)), float(cpu) if cpu else None)
            try:
                snap, blobs = worker.snapshot()
            except BaseException as e:  # never lose the step's result to a snapshot failure
                snap, blobs = {"changed": [], "deleted": [], "unsaved": {"*": f"{type(e).__name__}: {e}"}}, []
            channel.send({"type": "step_result", "step": msg.get("step"), "result": result, "snapshot": snap}, blobs)
        elif kind == "restore":
            channel.send(worker.restore(msg))
        elif kind in ("shutdown", "eof"):
            return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rlmx.sandbox.worker FD``: serve on the inherited socket ``FD``."""
    argv = sys.argv if argv is None else argv
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m rlmx.sandbox.worker FD", file=sys.stderr)
        return 2
    return serve(int(argv[1]))


if __name__ == "__main__":
    sys.exit(main())
