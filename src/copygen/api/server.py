"""The server process. On SIGTERM it drains: readiness fails at once, new requests get 503 +
Retry-After, requests in flight finish (up to COPYGEN_SHUTDOWN_DRAIN_S), then uvicorn shuts
down as usual and the process exits 0. On Kubernetes a preStop sleep comes first (so endpoints
are gone before the drain starts) and terminationGracePeriodSeconds must cover preStop +
drain; see docs/reliability.md."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn

from copygen.api.app import abort_in_flight, begin_drain, create_app, in_flight
from copygen.config import Settings
from copygen.observability import tracing

log = logging.getLogger("copygen.drain")


def serve(settings: Settings) -> None:
    """Serve the app on ``settings.host:port`` until SIGTERM (drained) or Ctrl-C. Traces
    go out over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (observability/tracing.py)."""
    tracing.start_tracing()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        server_header=False,
        # Client addresses from X-Forwarded-For only via COPYGEN_TRUSTED_PROXIES (client_ip.py);
        # uvicorn would otherwise believe the header from any loopback peer.
        proxy_headers=False,
        access_log=False,  # the request log line replaces it
        log_config=None,  # keep the structured logging configured by the caller
        timeout_graceful_shutdown=max(1, int(settings.shutdown_drain_s)),
    )
    server = DrainingServer(
        config,
        begin=lambda: begin_drain(app),
        in_flight=lambda: in_flight(app),
        abort=lambda: abort_in_flight(app),
        drain_s=settings.shutdown_drain_s,
    )
    if settings.ui:
        log.info("playground: open http://%s:%d/", settings.host, settings.port)
    try:
        server.run()
    finally:
        tracing.stop_tracing()  # the last spans, the drain's included


class DrainingServer(uvicorn.Server):
    """uvicorn, except that SIGTERM drains first and the process then exits 0 (uvicorn would
    re-raise the signal after shutting down, which reads as a kill)."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        begin: Callable[[], None],
        in_flight: Callable[[], int],
        abort: Callable[[], Awaitable[None]],
        drain_s: float,
    ) -> None:
        super().__init__(config)
        self._begin = begin
        self._in_flight = in_flight
        self._abort = abort
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
        left = self._in_flight()
        log.info("drained in %.2f s (%d left); shutting down", time.monotonic() - started, left)
        if left:
            # Answered by copygen (503 draining, or an error event ending a stream) rather
            # than cancelled by uvicorn, which a client would see as a bare 500.
            await self._abort()
        self.should_exit = True
