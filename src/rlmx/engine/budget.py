"""Budgets for a whole execution tree, and the LM wrapper that enforces them.

One :class:`BudgetTracker` is shared by the root execution and every child, including
children running in parallel. Sub-calls are reserved before they start (so parallel
children cannot overshoot ``max_sub_calls``); tokens and USD are checked before each call
against what was spent plus an estimate of every call in flight — input at ≈ 4 characters
a token, output at ``max_tokens`` or ``OUTPUT_TOKENS_ESTIMATE`` — and charged from
provider-reported usage afterwards. A batch therefore stops where its estimates would pass
the budget; a call whose real output exceeds its estimate can still overshoot by that much.
A cost is ``None`` (unknown) as soon as one call used a model with no price — never
silently zero.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from ..errors import BudgetExceededError
from ..lm.base import Completion, LMClient, Message, estimate_tokens
from ..lm.wrappers import WrapperLM
from ..types import Budgets, Usage

__all__ = ["OUTPUT_TOKENS_ESTIMATE", "BudgetTracker", "BudgetedLM"]

OUTPUT_TOKENS_ESTIMATE = 256
"""Output tokens reserved for a call in flight when it sets no ``max_tokens``."""


class _Prices(Protocol):
    def cost(self, spec: str, input_tokens: int, output_tokens: int) -> float | None: ...


class BudgetTracker:
    """Spending and limits of one execution tree. Single event loop; no locks needed.

    ``check()`` raises :class:`BudgetExceededError` (and remembers it in ``exceeded``)
    when a tree-wide limit is spent; ``usage()`` returns a :class:`Usage` snapshot.
    """

    def __init__(self, budgets: Budgets, prices: _Prices):
        self.budgets = budgets
        self.prices = prices
        self.started = time.monotonic()
        self.sub_calls = 0
        self.tool_calls = 0
        self.root_calls = 0
        self.cached_calls = 0
        self.cache_errors = 0
        self.turns = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd: float | None = 0.0
        self.max_depth_reached = 0
        self._inflight_tokens = 0
        self._inflight_cost = 0.0
        self.exceeded: BudgetExceededError | None = None
        self._child_slots: dict[int, asyncio.Semaphore] = {}

    # -- limits ---------------------------------------------------------------
    def _fail(self, budget: str, message: str) -> BudgetExceededError:
        err = BudgetExceededError(message, budget=budget)
        if self.exceeded is None:
            self.exceeded = err
        return err

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def seconds_left(self) -> float | None:
        """Wall seconds left in the budget (None: unlimited), so one slow call cannot overrun it."""
        b = self.budgets.max_wall_seconds
        return None if b is None else max(0.0, b - self.elapsed())

    def left(self) -> dict[str, Any]:
        """What is left of each budget (None: unlimited): ``turns``, ``sub_calls``,
        ``tokens``, ``cost_usd``, ``wall_seconds`` (this process's clock since the tracker
        was made)."""
        b = self.budgets
        tokens = self.input_tokens + self.output_tokens
        cost = None if b.max_cost_usd is None or self.cost_usd is None else max(0.0, b.max_cost_usd - self.cost_usd)
        wall = self.seconds_left()
        return {
            "turns": max(0, b.max_turns - self.turns),
            "sub_calls": None if b.max_sub_calls is None else max(0, b.max_sub_calls - self.sub_calls),
            "tokens": None if b.max_total_tokens is None else max(0, b.max_total_tokens - tokens),
            "cost_usd": None if cost is None else round(cost, 6),
            "wall_seconds": None if wall is None else round(wall, 3),
        }

    def check(self, *, extra_tokens: int = 0, extra_cost: float = 0.0) -> None:
        """Raise when any tree-wide budget is already spent, or would be by a call estimated at
        ``extra_tokens`` (input + output) and ``extra_cost`` USD on top of the calls in flight."""
        if self.exceeded is not None:
            raise self.exceeded
        b = self.budgets
        if b.max_wall_seconds is not None and self.elapsed() >= b.max_wall_seconds:
            raise self._fail("max_wall_seconds", f"wall-time budget of {b.max_wall_seconds:g} s spent")
        spent = self.input_tokens + self.output_tokens + self._inflight_tokens
        if b.max_total_tokens is not None and spent + extra_tokens > b.max_total_tokens:
            raise self._fail(
                "max_total_tokens",
                f"token budget of {b.max_total_tokens:,} spent ({spent:,} used or in flight)",
            )
        if b.max_cost_usd is not None and self.cost_usd is not None:
            committed = self.cost_usd + self._inflight_cost
            if self.cost_usd >= b.max_cost_usd or (extra_cost and committed + extra_cost > b.max_cost_usd):
                raise self._fail(
                    "max_cost_usd", f"cost budget of ${b.max_cost_usd:g} spent (${committed:.6f} used or in flight)"
                )

    def reserve_sub_calls(self, n: int = 1) -> None:
        """Count ``n`` sub-calls before they start, all or none; raise when ``max_sub_calls``
        would be passed."""
        self.check()
        b = self.budgets
        if b.max_sub_calls is not None and self.sub_calls + n > b.max_sub_calls:
            raise self._fail(
                "max_sub_calls",
                f"sub-call budget of {b.max_sub_calls} spent ({self.sub_calls} used, {n} more asked)",
            )
        self.sub_calls += n

    def release_sub_calls(self, n: int = 1) -> None:
        """Give back ``n`` reserved sub-calls that never ran (cut short by a budget, cancelled,
        or failed before a result), so that ``sub_calls`` counts the calls that ran."""
        self.sub_calls = max(0, self.sub_calls - n)

    def reserve_tool_calls(self, n: int = 1) -> None:
        """Count ``n`` custom tool calls before they start (docs/repl.md); raise when
        ``max_tool_calls`` would be passed, or another tree-wide budget is spent."""
        self.check()
        b = self.budgets
        if b.max_tool_calls is not None and self.tool_calls + n > b.max_tool_calls:
            raise self._fail(
                "max_tool_calls",
                f"tool-call budget of {b.max_tool_calls} spent ({self.tool_calls} used, {n} more asked)",
            )
        self.tool_calls += n

    def release_tool_calls(self, n: int = 1) -> None:
        """Give back ``n`` reserved tool calls that never ran (cancelled before they started)."""
        self.tool_calls = max(0, self.tool_calls - n)

    def child_slot(self, depth: int, limit: int) -> asyncio.Semaphore:
        """The tree's bound on child executions running at once at ``depth`` (``limit``, fixed
        when first asked): one semaphore per depth, so a parent holding its slot never waits
        for one its own children need."""
        sem = self._child_slots.get(depth)
        if sem is None:
            sem = self._child_slots[depth] = asyncio.Semaphore(limit)
        return sem

    def note_depth(self, depth: int) -> None:
        self.max_depth_reached = max(self.max_depth_reached, depth)

    # -- charging -------------------------------------------------------------
    def charge(self, completion: Completion) -> float | None:
        """Add a completion's usage; return its cost in USD (0 for cache hits, None unknown)."""
        self.input_tokens += completion.input_tokens
        self.output_tokens += completion.output_tokens
        if completion.raw.get("cache_error"):
            self.cache_errors += 1
        if completion.cached:
            self.cached_calls += 1
            return 0.0
        cost = self.prices.cost(completion.spec, completion.input_tokens, completion.output_tokens)
        if cost is None:
            self.cost_usd = None
        elif self.cost_usd is not None:
            self.cost_usd += cost
        return cost

    def usage(self) -> Usage:
        return Usage(
            turns=self.turns,
            root_calls=self.root_calls,
            sub_calls=self.sub_calls,
            tool_calls=self.tool_calls,
            cached_calls=self.cached_calls,
            cache_errors=self.cache_errors,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=self.cost_usd,
            wall_seconds=round(self.elapsed(), 3),
            max_depth_reached=self.max_depth_reached,
        )


class BudgetedLM(WrapperLM):
    """Checks the tree's budget before a call and charges the call's usage after it.

    ``role`` is ``"root"`` or ``"sub"`` (sub-call counting is done by the resolver through
    :meth:`BudgetTracker.reserve_sub_calls`, so that a batch reserves all its calls first).
    Raises :class:`BudgetExceededError`.
    """

    def __init__(self, inner: LMClient, tracker: BudgetTracker, *, role: str):
        super().__init__(inner)
        self.tracker = tracker
        self.role = role

    async def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        est_in = estimate_tokens("".join(m["content"] for m in messages))
        est_out = max_tokens or self.inner.max_tokens or OUTPUT_TOKENS_ESTIMATE
        estimate = est_in + est_out
        est_cost = self.tracker.prices.cost(self.spec, est_in, est_out) or 0.0
        self.tracker.check(extra_tokens=estimate, extra_cost=est_cost)
        if self.role == "root":
            self.tracker.root_calls += 1
        self.tracker._inflight_tokens += estimate
        self.tracker._inflight_cost += est_cost
        call = self.inner.complete(messages, max_tokens=max_tokens, temperature=temperature)
        try:
            left = self.tracker.seconds_left()
            completion = await (call if left is None else asyncio.wait_for(call, timeout=left))
        except TimeoutError:
            raise self.tracker._fail(
                "max_wall_seconds", f"wall-time budget of {self.tracker.budgets.max_wall_seconds:g} s spent"
            ) from None
        finally:
            self.tracker._inflight_tokens -= estimate
            self.tracker._inflight_cost -= est_cost
        cost = self.tracker.charge(completion)
        completion.raw = {**completion.raw, "cost_usd": cost}
        return completion
