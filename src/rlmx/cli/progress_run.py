"""Live progress of ``rlmx ask``'s run phase on stderr (issue 12 item 2).

:class:`RunProgress` is the run's ``on_event`` sink (events: :mod:`rlmx.engine.observers`).
On a terminal it shows one live status line — turn n of max, sub-calls done and in flight,
tokens, the running cost, seconds — and prints a line per finished turn above it; when
stderr is not a terminal (a pipe, a log file, CI) it prints only the line per finished
turn, so logs stay readable; ``quiet`` prints nothing. Tokens count root and sub-LM calls of
the whole tree (cache hits included, as in the answer's usage); the cost is USD, or
``cost unknown`` once a call used a model without a price.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

__all__ = ["RunProgress"]


class RunProgress:
    """``progress(kind, data)`` receives the engine's events; ``with progress.running(max_turns):``
    wraps the run (the live line exists only inside it, and only on a terminal)."""

    def __init__(self, console: Console, *, quiet: bool = False):
        self.console = console
        self.quiet = quiet
        self.max_turns = 0
        self.turn = 0
        self.sub_done = 0
        self.in_flight: set[tuple[str, str]] = set()
        self.tokens = 0
        self.cost: float | None = 0.0
        self.started = time.monotonic()

    # -- state ---------------------------------------------------------------------------
    def _charge(self, data: dict[str, Any]) -> None:
        if "model" not in data:
            return
        self.tokens += int(data.get("input_tokens") or 0) + int(data.get("output_tokens") or 0)
        cost = data.get("cost_usd")
        if cost is None:
            self.cost = None
        elif self.cost is not None:
            self.cost += float(cost)

    def summary(self) -> str:
        """``sub-calls 3 done, 1 in flight · 1,234 tokens · $0.0012`` (what is spent so far)."""
        cost = "cost unknown" if self.cost is None else f"${self.cost:.4f}"
        flight = f", {len(self.in_flight)} in flight" if self.in_flight else ""
        return f"sub-calls {self.sub_done} done{flight} · {self.tokens:,} tokens · {cost}"

    def status_line(self) -> Text:
        """The live line: turn n of max, the summary and the seconds since the run began."""
        t = Text(f"turn {self.turn}/{self.max_turns}", style="bold")
        t.append(f" · {self.summary()} · {time.monotonic() - self.started:.0f} s", style="dim")
        return t

    def __rich__(self) -> Text:  # what the live display renders at each refresh
        return self.status_line()

    # -- events ------------------------------------------------------------------------------
    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if self.quiet:
            return
        depth = int(data.get("depth") or 0)
        pad = "  " * depth
        if kind == "turn_started" and depth == 0:
            self.turn = int(data.get("turn") or 0)
        elif kind == "subcall_started":
            self.in_flight.add((str(data.get("execution_id")), str(data.get("id"))))
        elif kind == "subcall":
            self.in_flight.discard((str(data.get("execution_id")), str(data.get("id"))))
            self.sub_done += 1
            self._charge(data)
        elif kind == "turn_finished":
            self._charge(data)
            who = f"{pad}child {data.get('execution_id')} turn" if depth else "turn"
            flag = " · [red]error[/]" if data.get("error") else ""
            self.console.print(
                f"{who} {data.get('turn')}/{self.max_turns}: root {float(data.get('root_s') or 0):.2f} s, "
                f"step {float(data.get('step_s') or 0):.2f} s · {self.summary()}{flag}",
                markup=True,
                highlight=False,
            )
        elif kind == "execution_started" and depth > 0:
            self.console.print(f"{pad}child execution {data.get('execution_id')} (depth {depth})", highlight=False)
        elif kind == "execution_finished":
            eid = str(data.get("execution_id"))
            self.in_flight = {k for k in self.in_flight if k[0] != eid}
        elif kind == "sandbox_warning":
            layers = "; ".join(data.get("layers") or [])
            self.console.print(f"{pad}[bold red]WARNING[/] sandbox layers not active: {layers}", markup=True)

    @contextmanager
    def running(self, max_turns: int) -> Iterator[RunProgress]:
        """The run phase: a live status line on a terminal (removed when the run ends)."""
        self.max_turns, self.started = max_turns, time.monotonic()
        if self.quiet or not self.console.is_terminal:
            yield self
            return
        with Live(self, console=self.console, refresh_per_second=4, transient=True):
            yield self
