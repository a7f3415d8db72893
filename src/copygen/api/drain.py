"""Graceful shutdown. On SIGTERM the process drains: readiness fails at once, new requests
get 503 + Retry-After, requests in flight finish (up to COPYGEN_SHUTDOWN_DRAIN_S), then uvicorn
shuts down as usual and the process exits 0. On Kubernetes a preStop sleep comes first (so
endpoints are gone before the drain starts) and terminationGracePeriodSeconds must cover
preStop + drain; see docs/reliability.md."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from copygen.api.errors import error_response

log = logging.getLogger("copygen.drain")

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


class DrainingServer(uvicorn.Server):
    """uvicorn, except that SIGTERM drains first and the process then exits 0 (uvicorn would
    re-raise the signal after shutting down, which reads as a kill)."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        begin: Callable[[], None],
        in_flight: Callable[[], int],
        drain_s: float,
    ) -> None:
        super().__init__(config)
        self._begin = begin
        self._in_flight = in_flight
        self._drain_s = drain_s
        self._drain_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self._loop is None or self._drain_task is not None:
            super().handle_exit(sig, frame)  # Ctrl-C, or a second SIGTERM: stop now
            return
        # A signal handler may interrupt the loop anywhere: hand over through the self-pipe.
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(
                self._drain(), name="copygen-drain"
            )

    async def _drain(self) -> None:
        self._begin()
        started = time.monotonic()
        log.info("draining: %d request(s) in flight", self._in_flight())
        while self._in_flight() and time.monotonic() - started < self._drain_s:
            await asyncio.sleep(0.05)
        log.info(
            "drained in %.2f s (%d left); shutting down",
            time.monotonic() - started,
            self._in_flight(),
        )
        self.should_exit = True
