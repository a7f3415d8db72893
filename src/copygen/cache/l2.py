"""L2: Redis, shared by every replica. Redis trouble is a cache miss, never an error: short
timeouts, one retry, a bounded pool and a circuit breaker in front of it (resilience.guarded).
"""

from __future__ import annotations

import contextlib
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from copygen.cache.keys import KEY_PREFIX
from copygen.errors import CacheUnavailable
from copygen.resilience.breaker import BreakerState, CircuitBreaker
from copygen.resilience.guarded import GuardedCall, returning

T = TypeVar("T")

#: What is worth a second try: the connection, not the command.
_RETRYABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)

HOT_KEY = f"{KEY_PREFIX}:hot"
LOCK_PREFIX = f"{KEY_PREFIX}:lock:"
HOT_KEEP = 10_000
_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisL2:
    """L2 on Redis. Every method turns a Redis problem into "nothing": None, False or 0.

    Errors and timeouts feed a circuit breaker; while it is open no call reaches Redis, and
    after ``reset_s`` one probe finds out whether Redis is back. No restart is needed.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl_s: int,
        timeout_s: float = 0.25,
        max_connections: int = 32,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        # Imported here so that an L1-only deployment never needs a Redis client.
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,  # waiting for a free connection
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        # No retries inside the client: the guard retries (once, with jitter, within a budget).
        self._redis = Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        # The socket timeout bounds each try; the guard bounds the whole call (three socket
        # timeouts), retry included: the one retry layer for Redis.
        self._guard = GuardedCall(
            breaker or CircuitBreaker("redis", failure_threshold=3, reset_s=2.0),
            budget_s=timeout_s * 3,
            retry_on=_RETRYABLE,
        )

    @property
    def up(self) -> bool:
        return self.breaker.state is BreakerState.CLOSED

    @property
    def breaker(self) -> CircuitBreaker:
        return self._guard.breaker

    @property
    def errors_total(self) -> int:
        return self._guard.errors_total

    @property
    def skipped_total(self) -> int:
        """Calls the open breaker kept from Redis."""
        return self._guard.skipped_total

    async def _call(
        self, op: Callable[[], Awaitable[T]], default: T, budget_s: float | None = None
    ) -> T:
        """``op()``, or ``default`` when Redis is skipped (breaker open) or fails."""
        return await self._guard(op, returning(default), budget_s=budget_s)

    async def get(self, key: str) -> bytes | None:
        async def op() -> bytes | None:
            value = await self._redis.get(key)
            return value if isinstance(value, bytes) else None

        return await self._call(op, None)

    async def set(self, key: str, blob: bytes) -> bool:
        async def op() -> bool:
            await self._redis.set(key, blob, ex=self.ttl_s or None)
            return True

        return await self._call(op, False)

    async def record_hits(self, counts: Counter[str]) -> None:
        """Add access counts to the shared popularity table (a sorted set)."""
        if not counts:
            return

        async def op() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, count in counts.items():
                    pipe.zincrby(HOT_KEY, count, key)
                pipe.zremrangebyrank(HOT_KEY, 0, -HOT_KEEP - 1)
                await pipe.execute()

        await self._call(op, None)

    async def hottest(self, n: int) -> list[tuple[str, bytes]]:
        """The ``n`` most requested keys that still hold a value."""

        async def op() -> list[tuple[str, bytes]]:
            ranked = await self._redis.zrevrange(HOT_KEY, 0, n - 1)
            keys = [k.decode() for k in ranked if isinstance(k, bytes)]
            if not keys:
                return []
            values = await self._redis.mget(keys)
            return [(k, v) for k, v in zip(keys, values, strict=True) if isinstance(v, bytes)]

        return await self._call(op, [])

    async def delete_matching(self, pattern: str) -> int:
        """Delete every key matching ``pattern``; raises CacheUnavailable when Redis cannot
        (an invalidation that silently did nothing would leave stale copy everywhere)."""

        async def op() -> int:
            deleted = 0
            async for batch in _chunks(self._redis.scan_iter(match=pattern, count=500), 500):
                deleted += int(await self._redis.unlink(*batch))
                await self._redis.zrem(HOT_KEY, *batch)
            return deleted

        async def unreachable() -> int:
            raise CacheUnavailable("Redis is unreachable: the shared cache was not cleared")

        # Deleting may scan many keys: give it more than one call's budget.
        return await self._guard(op, unreachable, budget_s=max(5.0, self.timeout_s * 3))

    async def acquire_lock(self, key: str, ttl_s: float) -> str | None | Literal[False]:
        """A token when this replica now holds the generation lock for ``key``; None when
        another replica holds it; False when Redis cannot say (then act alone)."""
        token = secrets.token_hex(8)

        async def op() -> str | None:
            taken = await self._redis.set(LOCK_PREFIX + key, token, nx=True, px=int(ttl_s * 1000))
            return token if taken else None

        result: str | None | Literal[False] = await self._call(op, False)
        return result

    async def lock_held(self, key: str) -> bool:
        async def op() -> bool:
            return bool(await self._redis.exists(LOCK_PREFIX + key))

        return await self._call(op, False)

    async def release_lock(self, key: str, token: str) -> None:
        async def op() -> None:
            await self._redis.eval(_RELEASE_LOCK, 1, LOCK_PREFIX + key, token)

        await self._call(op, None)

    async def size(self) -> int | None:
        """Keys in the Redis database (entries, plus the lock and popularity keys)."""

        async def op() -> int | None:
            return int(await self._redis.dbsize())

        return await self._call(op, None)

    async def ping(self) -> bool:
        async def op() -> bool:
            return bool(await self._redis.ping())

        return await self._call(op, False)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._redis.aclose()


async def _chunks(items: Any, size: int) -> Any:
    batch: list[Any] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
