"""Per-client rate limits (requests, and optionally tokens, per window) with ``limits``.

The counters live in Redis when COPYGEN_REDIS_URL is set, so every replica shares one budget
per client. When Redis fails, the guarded call (resilience.guarded) switches to an in-process
limiter (each replica then enforces the limit on its own: looser across replicas, never
unlimited) and goes back to Redis once a probe succeeds. The HTTP side is
api/middleware/rate_limit.py.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from copygen.resilience.breaker import CircuitBreaker
from copygen.resilience.guarded import GuardedCall

T = TypeVar("T")


class Limiter:
    """A fixed-window limiter on Redis with an in-process fallback."""

    def __init__(self, redis_url: str | None, *, timeout_s: float = 0.25) -> None:
        self._local = FixedWindowRateLimiter(MemoryStorage())
        self._shared: FixedWindowRateLimiter | None = None
        if redis_url:
            storage: Storage = RedisStorage(
                "async+" + redis_url,
                implementation="redispy",
                key_prefix="copygen:limits",
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                # No client retries: a failed call falls back to the local limiter at once.
                retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]
            )
            self._shared = FixedWindowRateLimiter(storage)
        # No retry: a failed call falls back to the local limiter at once.
        self._guard = GuardedCall(
            CircuitBreaker("ratelimit-redis", failure_threshold=3, reset_s=2.0),
            budget_s=timeout_s * 3,
        )
        self.fallbacks_total = 0

    @property
    def breaker(self) -> CircuitBreaker:
        return self._guard.breaker

    def status(self) -> dict[str, object]:
        """For /health: whether counters are shared through Redis right now, or local."""
        shared = self._shared is not None
        return {
            "shared": shared and self.breaker.state.value == "closed",
            "redis_configured": shared,
            "breaker": self.breaker.state.value if shared else None,
            "local_fallbacks": self.fallbacks_total if shared else 0,
        }

    async def _call(self, op: Callable[[FixedWindowRateLimiter], Awaitable[T]]) -> T:
        async def local() -> T:
            self.fallbacks_total += 1
            return await op(self._local)

        shared = self._shared
        if shared is None:
            return await local()
        return await self._guard(lambda: op(shared), local)

    async def hit(self, item: RateLimitItem, identity: str, cost: int = 1) -> bool:
        return await self._call(lambda limiter: limiter.hit(item, identity, cost=cost))

    async def add(self, item: RateLimitItem, identity: str, amount: int) -> int:
        """Add ``amount`` (negative: give back) to ``identity``'s count in this window, at
        once (one INCRBY on Redis); the new count. What token reservations are made of
        (copygen/budget.py)."""
        key = item.key_for(identity)
        return await self._call(
            lambda limiter: limiter.storage.incr(key, item.get_expiry(), amount=amount)
        )

    async def test(self, item: RateLimitItem, identity: str) -> bool:
        return await self._call(lambda limiter: limiter.test(item, identity))

    async def stats(self, item: RateLimitItem, identity: str) -> tuple[int, float]:
        """(remaining, seconds until the window resets)."""
        window = await self._call(lambda limiter: limiter.get_window_stats(item, identity))
        return window.remaining, max(0.0, window.reset_time - time.time())
