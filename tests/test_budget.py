import asyncio

import pytest

from rlmx.engine.budget import BudgetedLM, BudgetTracker
from rlmx.errors import BudgetExceededError
from rlmx.lm.base import Completion, LMClient


class Prices:
    def cost(self, spec, i, o):
        return None if spec.startswith("unknown") else (i + o) * 1e-6


class Echo(LMClient):
    provider = "test"
    model = "m"

    def __init__(self, delay=0.0):
        self.delay = delay

    async def complete(self, messages, *, max_tokens=None, temperature=None):
        await asyncio.sleep(self.delay)
        return Completion("ok", 100, 10, self.provider, self.model)


def tracker(**b):
    from rlmx.types import Budgets

    return BudgetTracker(Budgets(**b), Prices())


def test_sub_call_budget_is_strict_under_parallel_children():
    t = tracker(max_sub_calls=5)
    lm = BudgetedLM(Echo(delay=0.01), t, role="sub")

    async def child():
        t.reserve_sub_calls()
        return await lm.complete([{"role": "user", "content": "x"}])

    async def main():
        return await asyncio.gather(*(child() for _ in range(20)), return_exceptions=True)

    results = asyncio.run(main())
    ok = [r for r in results if isinstance(r, Completion)]
    failed = [r for r in results if isinstance(r, BudgetExceededError)]
    assert len(ok) == 5 and len(failed) == 15
    assert t.sub_calls == 5 and t.exceeded is not None and t.exceeded.budget == "max_sub_calls"


def test_token_budget_counts_calls_in_flight():
    t = tracker(max_total_tokens=800)  # each call reserves ≈ 100 input + 256 output tokens
    lm = BudgetedLM(Echo(delay=0.01), t, role="sub")
    big = [{"role": "user", "content": "x" * 400}]  # ≈ 100 tokens estimated

    async def main():
        return await asyncio.gather(*(lm.complete(big) for _ in range(5)), return_exceptions=True)

    results = asyncio.run(main())
    assert sum(isinstance(r, Completion) for r in results) == 2
    assert t.input_tokens + t.output_tokens == 220


def test_cost_budget_and_unknown_cost():
    t = tracker(max_cost_usd=0.0006)  # each call costs 110e-6 and reserves ≈ 257e-6 while in flight
    lm = BudgetedLM(Echo(), t, role="root")
    asyncio.run(lm.complete([{"role": "user", "content": "q"}]))
    assert t.cost_usd == pytest.approx(110e-6)
    with pytest.raises(BudgetExceededError) as e:
        for _ in range(10):
            asyncio.run(lm.complete([{"role": "user", "content": "q"}]))
    assert e.value.budget == "max_cost_usd" and t.cost_usd <= 0.0006
    assert t.cost_usd == pytest.approx(440e-6)  # the 5th call would have passed the budget

    t2 = tracker()
    unknown = Echo()
    unknown.provider = "unknown"
    asyncio.run(BudgetedLM(unknown, t2, role="root").complete([{"role": "user", "content": "q"}]))
    assert t2.cost_usd is None and t2.usage().cost_usd is None


def test_cached_calls_cost_nothing():
    t = tracker()
    t.charge(Completion("x", 1000, 1000, "test", "m", cached=True))
    assert t.cost_usd == 0.0 and t.cached_calls == 1 and t.input_tokens == 1000


def test_wall_budget():
    t = tracker(max_wall_seconds=0.01)
    t.started -= 1
    with pytest.raises(BudgetExceededError):
        t.check()


def test_wall_budget_bounds_a_slow_call():
    t = tracker(max_wall_seconds=0.2)
    lm = BudgetedLM(Echo(delay=30), t, role="root")
    with pytest.raises(BudgetExceededError) as e:
        asyncio.run(lm.complete([{"role": "user", "content": "q"}]))
    assert e.value.budget == "max_wall_seconds" and t.exceeded is e.value


def test_cost_budget_holds_for_parallel_calls():
    """50 concurrent calls must not all pass a cost check that only looks at money spent."""
    t = tracker(max_cost_usd=0.002)  # Prices: 1e-6 USD a token; each call reserves ≈ 257e-6
    lm = BudgetedLM(Echo(delay=0.01), t, role="sub")

    async def main():
        return await asyncio.gather(
            *(lm.complete([{"role": "user", "content": "q"}]) for _ in range(50)), return_exceptions=True
        )

    results = asyncio.run(main())
    done = sum(isinstance(r, Completion) for r in results)
    assert done == 7 and t.cost_usd is not None and t.cost_usd <= 0.002  # 7 x 257e-6 reserved fits
