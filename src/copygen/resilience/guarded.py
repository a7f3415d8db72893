"""One way to call a dependency that may be down: a breaker in front, a deadline around the
whole call (retry included), at most one jittered retry, and a fallback instead of an error.

The Redis cache (a miss when Redis is down) and the rate limiter (the in-process limiter when
Redis is down) are both built on it, so a Redis outage behaves the same wherever it is met.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import stamina

from copygen.resilience.breaker import CircuitBreaker

log = logging.getLogger("copygen.resilience")
T = TypeVar("T")


class GuardedCall:
    """Calls through ``breaker`` within ``budget_s``; ``retry_on`` errors get one more try
    after a short jittered pause (none when empty). ``errors_total`` counts failed calls and
    ``skipped_total`` calls the open breaker kept from the dependency."""

    def __init__(
        self,
        breaker: CircuitBreaker,
        *,
        budget_s: float,
        retry_on: tuple[type[Exception], ...] = (),
    ) -> None:
        self.breaker = breaker
        self.budget_s = budget_s
        self.retry_on = retry_on
        self.errors_total = 0
        self.skipped_total = 0

    async def __call__(
        self,
        op: Callable[[], Awaitable[T]],
        fallback: Callable[[], Awaitable[T]],
        *,
        budget_s: float | None = None,
    ) -> T:
        """``op()``, or ``fallback()`` when the breaker is open or ``op`` fails or runs out of
        time. Cancellation is never swallowed."""
        if not self.breaker.allow():
            self.skipped_total += 1
            return await fallback()
        budget = budget_s or self.budget_s
        try:
            async with asyncio.timeout(budget):
                value = await self._attempts(op, budget)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the dependency's trouble is the fallback
            self.errors_total += 1
            self.breaker.failure()
            log.debug("%s call failed: %s", self.breaker.name, type(exc).__name__)
            return await fallback()
        self.breaker.success()
        return value

    async def _attempts(self, op: Callable[[], Awaitable[T]], budget_s: float) -> T:
        if not self.retry_on:
            return await op()
        async for attempt in stamina.retry_context(
            on=self.retry_on,
            attempts=2,
            timeout=budget_s,
            wait_initial=0.005,
            wait_max=0.02,
            wait_jitter=0.01,
        ):
            with attempt:
                value = await op()
        return value


def returning(value: T) -> Callable[[], Awaitable[T]]:
    """A fallback that answers ``value``."""

    async def fallback() -> T:
        return value

    return fallback
