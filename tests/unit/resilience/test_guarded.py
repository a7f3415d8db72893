"""A guarded call: the fallback instead of an error, the breaker in front, one retry for the
listed errors, one budget around it all, and cancellation passed on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from copygen.resilience.breaker import BreakerState, CircuitBreaker
from copygen.resilience.guarded import GuardedCall, returning
from tests.fakes import FakeClock


def _calls(*outcomes: object) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """An op that raises or returns ``outcomes`` in turn; the list counts its calls."""
    made: list[int] = []

    async def op() -> str:
        made.append(1)
        outcome = outcomes[len(made) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return str(outcome)

    return op, made


async def test_a_working_dependency_answers_and_keeps_the_breaker_closed() -> None:
    guard = GuardedCall(CircuitBreaker("redis"), budget_s=1.0)
    op, made = _calls("value")
    assert await guard(op, returning("fallback")) == "value"
    assert (len(made), guard.errors_total, guard.breaker.state) == (1, 0, BreakerState.CLOSED)


async def test_a_failure_answers_the_fallback_and_counts_for_the_breaker() -> None:
    guard = GuardedCall(CircuitBreaker("redis", failure_threshold=2), budget_s=1.0)
    for _ in range(2):
        op, _ = _calls(ConnectionError("down"))
        assert await guard(op, returning("fallback")) == "fallback"
    assert guard.errors_total == 2
    assert guard.breaker.state is BreakerState.OPEN


async def test_an_open_breaker_skips_the_dependency_until_its_reset() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("redis", failure_threshold=1, reset_s=5.0, clock=clock)
    guard = GuardedCall(breaker, budget_s=1.0)
    await guard(_calls(ConnectionError())[0], returning("fallback"))
    op, made = _calls("value")
    assert await guard(op, returning("fallback")) == "fallback"
    assert (made, guard.skipped_total) == ([], 1)
    clock.advance(5.0)  # the probe goes through and closes the breaker again
    assert await guard(op, returning("fallback")) == "value"
    assert breaker.state is BreakerState.CLOSED


async def test_listed_errors_get_exactly_one_more_try() -> None:
    guard = GuardedCall(CircuitBreaker("redis"), budget_s=1.0, retry_on=(ConnectionError,))
    op, made = _calls(ConnectionError(), "second time lucky")
    assert await guard(op, returning("fallback")) == "second time lucky"
    assert (len(made), guard.errors_total) == (2, 0)
    op, made = _calls(ConnectionError(), ConnectionError(), "never asked")
    assert await guard(op, returning("fallback")) == "fallback"
    assert len(made) == 2
    op, made = _calls(KeyError("not listed"), "never asked")
    assert await guard(op, returning("fallback")) == "fallback"
    assert len(made) == 1


async def test_the_budget_bounds_the_whole_call_retry_included() -> None:
    async def hangs() -> str:
        await asyncio.sleep(10)
        return "late"

    guard = GuardedCall(CircuitBreaker("redis"), budget_s=0.05, retry_on=(ConnectionError,))
    started = time.perf_counter()
    assert await guard(hangs, returning("fallback")) == "fallback"
    assert time.perf_counter() - started < 1.0
    assert guard.errors_total == 1
    patient = GuardedCall(CircuitBreaker("redis"), budget_s=30.0)
    started = time.perf_counter()
    assert await patient(hangs, returning("fallback"), budget_s=0.05) == "fallback"
    assert time.perf_counter() - started < 1.0  # the call's own budget replaces the default


async def test_cancellation_is_never_swallowed_into_the_fallback() -> None:
    guard = GuardedCall(CircuitBreaker("redis"), budget_s=5.0)
    started = asyncio.Event()

    async def hangs() -> str:
        started.set()
        await asyncio.sleep(10)
        return "late"

    task = asyncio.create_task(guard(hangs, returning("fallback")))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert guard.errors_total == 0
