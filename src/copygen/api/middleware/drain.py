"""Draining: counts requests in flight and, once shutdown began, refuses new ones with 503 +
Retry-After. The server (api/server.py) waits on the count; what is still running when the
drain deadline passes is cancelled and answered here (``abort``), so a client never gets a
bare 500 from a cancelled request: 503 ``draining`` when nothing was sent yet, a final SSE
``error`` event when a stream was under way."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copygen.api.responses import error_response
from copygen.resilience.admission import Drain

#: Paths that stay open while draining and do not count as work in flight.
OPEN_WHILE_DRAINING = ("/health", "/metrics")
RETRY_AFTER_S = "5"
GONE = "the service shut down before this request finished; retry on another replica"


@dataclass(eq=False)
class _Flight:
    """One request being served: its task and what has been sent of its response."""

    task: asyncio.Task[object] | None
    #: The response's headers once it started (None: nothing sent yet).
    headers: Sequence[tuple[bytes, bytes]] | None = None
    finished: bool = False
    aborted: bool = False


class InFlight:
    """The requests being served now (health and metrics excluded): counted for the server's
    drain wait, stopped and answered when the drain deadline passes."""

    def __init__(self) -> None:
        self.flights: set[_Flight] = set()

    def __len__(self) -> int:
        return len(self.flights)

    async def abort(self) -> None:
        """Stop every request still running and answer it (the drain deadline passed)."""
        for flight in list(self.flights):
            if flight.task is not None and not flight.aborted:
                flight.aborted = True
                flight.task.cancel()
        for _ in range(100):  # each answers in its own task; give them a moment
            if not self.flights:
                return
            await asyncio.sleep(0.01)


class DrainMiddleware:
    """Counts requests in flight (``flights``); once the service's ``drain`` began, refuses
    new ones with 503."""

    def __init__(self, app: ASGIApp, drain: Drain, flights: InFlight) -> None:
        self.app = app
        self._drain = drain
        self._flights = flights.flights

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OPEN_WHILE_DRAINING):
            await self.app(scope, receive, send)
            return
        if self._drain.active:
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
                flight.headers = message.get("headers", ())
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                flight.finished = True
            await send(message)

        # The request's own task: cancelling it at the deadline lands here, where the request
        # is answered (no task per request: this sits on the cache-hit path).
        flight = _Flight(asyncio.current_task())
        self._flights.add(flight)
        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if not flight.aborted or flight.task is None:
                raise  # cancelled by someone else (uvicorn, a client that left): pass it on
            flight.task.uncancel()
            await _answer_aborted(flight, scope, receive, send)
        finally:
            self._flights.discard(flight)


async def _answer_aborted(flight: _Flight, scope: Scope, receive: Receive, send: Send) -> None:
    with contextlib.suppress(Exception):  # the client may be gone too
        if flight.headers is None:
            response = error_response(
                503,
                "draining",
                GONE,
                headers={"Retry-After": RETRY_AFTER_S, "Connection": "close"},
            )
            await response(scope, receive, send)
        elif not flight.finished:
            tail = b""
            if (b"content-type", b"text/event-stream") in (
                (name, value.split(b";")[0]) for name, value in flight.headers
            ):
                body = {"error": {"type": "draining", "message": GONE, "field": None}}
                tail = f"event: error\ndata: {json.dumps(body)}\n\n".encode()
            await send({"type": "http.response.body", "body": tail, "more_body": False})
