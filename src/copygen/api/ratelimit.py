"""Per-client rate limits (requests, and optionally tokens, per window) with ``limits``.

The counters live in Redis when COPYGEN_REDIS_URL is set, so every replica shares one budget
per client. When Redis fails, a breaker switches to an in-process limiter (each replica then
enforces the limit on its own: looser across replicas, never unlimited) and goes back to Redis
once a probe succeeds. Clients are API-key tenants, or the client address for anonymous use.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copygen.api.errors import error_response
from copygen.api.security import OPEN_PATHS, Network, client_ip
from copygen.engine.breaker import CircuitBreaker
from copygen.engine.engine import ANONYMOUS
from copygen.observability.logging import LOG_FIELDS

log = logging.getLogger("copygen.ratelimit")
T = TypeVar("T")


class Limiter:
    """A fixed-window limiter on Redis with an in-process fallback."""

    def __init__(self, redis_url: str | None, *, timeout_s: float = 0.25) -> None:
        self._local = FixedWindowRateLimiter(MemoryStorage())
        self._shared: FixedWindowRateLimiter | None = None
        self._timeout_s = timeout_s
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
        self.breaker = CircuitBreaker("ratelimit-redis", failure_threshold=3, reset_s=2.0)
        self.fallbacks_total = 0

    async def _call(self, op: Callable[[FixedWindowRateLimiter], Awaitable[T]]) -> T:
        if self._shared is not None and self.breaker.allow():
            try:
                async with asyncio.timeout(self._timeout_s * 3):
                    value = await op(self._shared)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - fall back, never fail the request
                self.breaker.failure()
                log.debug("rate limit storage failed: %s", type(exc).__name__)
            else:
                self.breaker.success()
                return value
        self.fallbacks_total += 1
        return await op(self._local)

    async def hit(self, item: RateLimitItem, identity: str, cost: int = 1) -> bool:
        return await self._call(lambda limiter: limiter.hit(item, identity, cost=cost))

    async def test(self, item: RateLimitItem, identity: str) -> bool:
        return await self._call(lambda limiter: limiter.test(item, identity))

    async def stats(self, item: RateLimitItem, identity: str) -> tuple[int, float]:
        """(remaining, seconds until the window resets)."""
        window = await self._call(lambda limiter: limiter.get_window_stats(item, identity))
        return window.remaining, max(0.0, window.reset_time - time.time())


class RateLimitMiddleware:
    """429 + Retry-After + RateLimit-* headers past the request limit or the token budget."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: Limiter,
        *,
        requests: str | None,
        tokens: str | None,
        trusted_proxies: tuple[Network, ...],
        on_reject: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self._limiter = limiter
        self._requests = parse(requests) if requests else None
        self._tokens = parse(tokens) if tokens else None
        self._trusted = trusted_proxies
        self._on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"].startswith(OPEN_PATHS)
            or (self._requests is None and self._tokens is None)
        ):
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        tenant = state.get("tenant", ANONYMOUS)
        identity = (
            f"ip:{client_ip(scope, self._trusted)}" if tenant == ANONYMOUS else f"key:{tenant}"
        )
        headers: dict[str, str] = {}
        if self._requests is not None:
            allowed = await self._limiter.hit(self._requests, identity)
            remaining, reset_s = await self._limiter.stats(self._requests, identity)
            headers = _headers(self._requests, remaining, reset_s)
            if not allowed:
                await self._refuse(scope, receive, send, headers, reset_s, "requests")
                return
        if self._tokens is not None and not await self._limiter.test(self._tokens, identity):
            _, reset_s = await self._limiter.stats(self._tokens, identity)
            await self._refuse(scope, receive, send, headers, reset_s, "tokens")
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and headers:
                message["headers"] = [
                    *message.get("headers", []),
                    *((k.lower().encode(), v.encode()) for k, v in headers.items()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            fields = state.get(LOG_FIELDS) or {}
            used = int(fields.get("prompt_tokens", 0)) + int(fields.get("completion_tokens", 0))
            if self._tokens is not None and used:
                await self._limiter.hit(self._tokens, identity, cost=used)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        reset_s: float,
        what: str,
    ) -> None:
        if self._on_reject is not None:
            self._on_reject()
        retry = {"Retry-After": str(max(1, math.ceil(reset_s)))}
        message = f"rate limit exceeded ({what}); retry after the window resets"
        response = error_response(429, "rate_limited", message, headers={**headers, **retry})
        await response(scope, receive, send)


def _headers(item: RateLimitItem, remaining: int, reset_s: float) -> dict[str, str]:
    """The IETF draft's RateLimit-* fields."""
    return {
        "RateLimit-Limit": str(item.amount),
        "RateLimit-Remaining": str(max(0, remaining)),
        "RateLimit-Reset": str(max(0, math.ceil(reset_s))),
    }
