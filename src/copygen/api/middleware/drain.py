"""Draining: counts requests in flight and, once shutdown began, refuses new ones with 503 +
Retry-After. The server (api/server.py) waits on the count; what is still running when the
drain deadline passes is answered here (``abort``), so a client never gets a bare 500 from a
cancelled request: 503 ``draining`` when nothing was sent yet, a final SSE ``error`` event
when a stream was under way."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copygen.api.responses import error_response

#: Paths that stay open while draining and do not count as work in flight.
OPEN_WHILE_DRAINING = ("/health", "/metrics")
RETRY_AFTER_S = "5"
GONE = "the service shut down before this request finished; retry on another replica"


@dataclass(eq=False)
class _Flight:
    """One request being served: what has been sent of its response."""

    inner: asyncio.Task[None]
    started: bool = False
    stream: bool = False
    finished: bool = False
    aborted: bool = False


class DrainMiddleware:
    """Counts requests in flight; while draining, refuses new ones with 503."""

    def __init__(self, app: ASGIApp, draining: Callable[[], bool]) -> None:
        self.app = app
        self._draining = draining
        self._flights: set[_Flight] = set()

    @property
    def in_flight(self) -> int:
        return len(self._flights)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OPEN_WHILE_DRAINING):
            await self.app(scope, receive, send)
            return
        if self._draining():
            response = error_response(
                503,
                "draining",
                "the service is shutting down; retry on another replica",
                headers={"Retry-After": RETRY_AFTER_S, "Connection": "close"},
            )
            await response(scope, receive, send)
            return

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                flight.started = True
                headers = dict(message.get("headers", []))
                flight.stream = headers.get(b"content-type", b"").startswith(b"text/event-stream")
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                flight.finished = True
            await send(message)

        flight = _Flight(asyncio.ensure_future(self.app(scope, receive, tracked)))
        self._flights.add(flight)
        try:
            await flight.inner
        except asyncio.CancelledError:
            if not flight.aborted:  # this request's own task was cancelled: pass it on
                flight.inner.cancel()
                raise
            await _answer_aborted(flight, scope, receive, send)
        finally:
            self._flights.discard(flight)

    async def abort(self) -> None:
        """Stop every request still running and answer it (the drain deadline passed)."""
        flights = list(self._flights)
        for flight in flights:
            flight.aborted = True
            flight.inner.cancel()
        for _ in range(100):  # each answers in its own task; give them a moment
            if not self._flights:
                return
            await asyncio.sleep(0.01)


async def _answer_aborted(flight: _Flight, scope: Scope, receive: Receive, send: Send) -> None:
    with contextlib.suppress(Exception):  # the client may be gone too
        if not flight.started:
            response = error_response(
                503,
                "draining",
                GONE,
                headers={"Retry-After": RETRY_AFTER_S, "Connection": "close"},
            )
            await response(scope, receive, send)
        elif not flight.finished:
            tail = b""
            if flight.stream:
                body = {"error": {"type": "draining", "message": GONE, "field": None}}
                tail = f"event: error\ndata: {json.dumps(body)}\n\n".encode()
            await send({"type": "http.response.body", "body": tail, "more_body": False})
