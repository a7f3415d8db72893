"""Draining: counts requests in flight and, once shutdown began, refuses new ones with 503 +
Retry-After. The server (api/server.py) waits on the count before it stops."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from copygen.api.responses import error_response

#: Paths that stay open while draining and do not count as work in flight.
OPEN_WHILE_DRAINING = ("/health", "/metrics")


class DrainMiddleware:
    """Counts requests in flight; while draining, refuses new ones with 503."""

    def __init__(self, app: ASGIApp, draining: Callable[[], bool]) -> None:
        self.app = app
        self._draining = draining
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OPEN_WHILE_DRAINING):
            await self.app(scope, receive, send)
            return
        if self._draining():
            response = error_response(
                503,
                "draining",
                "the service is shutting down; retry on another replica",
                headers={"Retry-After": "5", "Connection": "close"},
            )
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
