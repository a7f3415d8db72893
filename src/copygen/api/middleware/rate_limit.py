"""429 + Retry-After + RateLimit-* headers past a client's request limit or token budget.
Clients are API-key tenants, or the client address for anonymous use; the counting is
copygen.ratelimit.Limiter's. A spent token budget is refused here, before the body is read;
what a request generates is charged to the client's meter (copygen/budget.py), which this
middleware sets for the request and everything it starts."""

from __future__ import annotations

import math
from collections.abc import Callable

from limits import RateLimitItem, parse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copygen.api.middleware.auth import is_open
from copygen.api.middleware.client_ip import Network, client_ip
from copygen.api.responses import error_response
from copygen.api.state import tenant
from copygen.auth import ANONYMOUS
from copygen.budget import TokenBudget, budget_identity, metering
from copygen.ratelimit import Limiter

#: (method, path) of the requests that generate: refused before their body is read once the
#: token budget is spent. Others (a job's status, brands, feedback) are served whatever it is.
GENERATING = {
    ("POST", "/v1/copy"), ("POST", "/v1/copy/batch"), ("POST", "/v1/assets/google-ads-rsa"),
    ("POST", "/v1/assets/meta-ad"), ("POST", "/v1/jobs"), ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
}  # fmt: skip


class RateLimitMiddleware:
    """429 + Retry-After + RateLimit-* headers past the request limit or the token budget."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: Limiter,
        *,
        requests: str | None,
        budget: TokenBudget | None,
        trusted_proxies: tuple[Network, ...],
        on_reject: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self._limiter = limiter
        self._requests = parse(requests) if requests else None
        self._budget = budget
        self._trusted = trusted_proxies
        self._on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or is_open(scope["path"])
            or (self._requests is None and self._budget is None)
        ):
            await self.app(scope, receive, send)
            return
        caller = tenant(scope)
        identity = (
            f"ip:{client_ip(scope, self._trusted)}"
            if caller == ANONYMOUS
            else budget_identity(caller)
        )
        headers: dict[str, str] = {}
        if self._requests is not None:
            allowed = await self._limiter.hit(self._requests, identity)
            remaining, reset_s = await self._limiter.stats(self._requests, identity)
            headers = _headers(self._requests, remaining, reset_s)
            if not allowed:
                await self._refuse(scope, receive, send, headers, reset_s, "requests")
                return
        budget = self._budget
        if (
            budget is not None
            and (scope["method"], scope["path"]) in GENERATING
            and not await self._limiter.test(budget.item, identity)
        ):
            _, reset_s = await self._limiter.stats(budget.item, identity)
            await self._refuse(scope, receive, send, headers, reset_s, "tokens")
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and headers:
                message["headers"] = [
                    *message.get("headers", []),
                    *((k.lower().encode(), v.encode()) for k, v in headers.items()),
                ]
            await send(message)

        with metering(budget.meter(identity) if budget is not None else None):
            await self.app(scope, receive, send_with_headers)

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
