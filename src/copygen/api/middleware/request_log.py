"""One log line per HTTP request, and the same request to the HTTP metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copygen.api.state import REQUEST_ID, log_fields, state

#: Logged status of a request whose client disconnected first (nginx's convention).
CLIENT_CLOSED = 499

access = structlog.get_logger()  # lazy: configure_logging may run after import

#: ``(route template or None, method, status, seconds)`` of every finished request.
RequestHook = Callable[[str | None, str, int, float], None]


class RequestLogMiddleware:
    """One log line per HTTP request: id, method, route template, status (499 when the client
    went away), latency and whatever figures the route left in ``scope["state"][LOG_FIELDS]``
    (cache tier, tokens, job ids); ``on_done`` hears the same request (the HTTP metrics).
    Binds the request id for every log line written while the request runs.

    copygen's routes have no path parameters, so the template is the path when ``routes()``
    knows it and None otherwise (unbounded paths never become metric labels).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Callable[[], Collection[str]] = frozenset,
        on_done: RequestHook | None = None,
    ) -> None:
        self.app = app
        self._routes = routes
        self._known: frozenset[str] | None = None
        self._on_done = on_done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        request_id = state(scope).get(REQUEST_ID)
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_status)
            except asyncio.CancelledError:
                status = CLIENT_CLOSED  # the client went away; the request was dropped
                raise
            finally:
                if self._known is None:
                    self._known = frozenset(self._routes())
                path = scope["path"]
                route = path if path in self._known else None
                seconds = time.perf_counter() - started
                access.info(
                    "request",
                    logger="copygen.access",
                    request_id=request_id,
                    method=scope["method"],
                    route=route,
                    status=status,
                    latency_ms=round(seconds * 1000, 2),
                    **log_fields(scope),
                )
                if self._on_done is not None:
                    self._on_done(route, scope["method"], status, seconds)
