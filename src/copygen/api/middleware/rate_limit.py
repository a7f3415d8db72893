"""429 + Retry-After + RateLimit-* headers past a client's request limit or token budget.
Clients are API-key tenants, or the client address for anonymous use; the counting is
copygen.ratelimit.Limiter's."""

from __future__ import annotations

import math
from collections.abc import Callable

from limits import RateLimitItem, parse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copygen.api.middleware.auth import is_open
from copygen.api.middleware.client_ip import Network, client_ip
from copygen.api.responses import error_response
from copygen.api.state import log_fields, tenant
from copygen.auth import ANONYMOUS
from copygen.ratelimit import Limiter


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
            or is_open(scope["path"])
            or (self._requests is None and self._tokens is None)
        ):
            await self.app(scope, receive, send)
            return
        caller = tenant(scope)
        identity = (
            f"ip:{client_ip(scope, self._trusted)}" if caller == ANONYMOUS else f"key:{caller}"
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
            fields = log_fields(scope)
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
