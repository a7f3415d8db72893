"""The draining server on a loopback port: SIGTERM begins the drain, waits for the requests in
flight (up to the drain time), has the ones still running answered, then stops uvicorn."""

from __future__ import annotations

import asyncio
import signal
import time

import uvicorn
from fastapi import FastAPI

from copygen.api.server import DrainingServer
from tests.services import free_port


class Drain:
    """What the server is handed: the drain's start, the count in flight, the abort."""

    def __init__(self, in_flight: int) -> None:
        self.in_flight = in_flight
        self.began = 0
        self.aborted = 0

    def begin(self) -> None:
        self.began += 1

    async def abort(self) -> None:
        self.aborted += 1


def _server(drain: Drain, drain_s: float) -> DrainingServer:
    config = uvicorn.Config(FastAPI(), host="127.0.0.1", port=free_port(), log_level="warning")
    return DrainingServer(
        config, begin=drain.begin, in_flight=lambda: drain.in_flight, abort=drain.abort,
        drain_s=drain_s,
    )  # fmt: skip


async def _terminate(server: DrainingServer) -> asyncio.Task[None]:
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    server.handle_exit(signal.SIGTERM, None)
    return serving


async def test_sigterm_waits_for_the_requests_in_flight_then_stops() -> None:
    drain = Drain(in_flight=1)
    server = _server(drain, drain_s=10)
    serving = await _terminate(server)
    await asyncio.sleep(0.2)
    assert drain.began == 1  # readiness fails and new work is refused at once
    assert not serving.done()  # still waiting for the one in flight
    drain.in_flight = 0
    await asyncio.wait_for(serving, 5)
    assert drain.aborted == 0


async def test_what_still_runs_at_the_drain_deadline_is_answered_before_the_stop() -> None:
    drain = Drain(in_flight=2)
    server = _server(drain, drain_s=0.2)
    started = time.monotonic()
    await asyncio.wait_for(await _terminate(server), 5)
    assert time.monotonic() - started >= 0.2
    assert (drain.began, drain.aborted) == (1, 1)
