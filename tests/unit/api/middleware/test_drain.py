"""The drain deadline: what is still running is answered by copygen, never cancelled bare."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from copygen.api.app import abort_in_flight, begin_drain, create_app, in_flight
from copygen.api.middleware.drain import DrainMiddleware, InFlight
from copygen.config import Settings
from copygen.engine.engine import Engine
from copygen.resilience.admission import Drain
from tests.client import parse_sse, wait_ready
from tests.fakes import FakeRunner


async def test_requests_running_at_the_deadline_get_503_draining_or_a_final_error_event() -> None:
    hang = threading.Event()
    runner = FakeRunner(whole=False)
    config = Settings(warmup=False)
    app = create_app(config, engine=Engine(config, runner))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        await wait_ready(client)
        runner.hang = hang  # from now on every decoding step blocks until released
        body = {"product": "lamp", "variants": 1, "cache": "bypass"}
        plain = asyncio.create_task(client.post("/v1/copy", json=body))
        stream = asyncio.create_task(client.post("/v1/copy", json={**body, "stream": True}))
        for _ in range(200):
            if in_flight(app) == 2:
                break
            await asyncio.sleep(0.01)
        begin_drain(app)
        await abort_in_flight(app)
        hang.set()
        answered, streamed = await plain, await stream
    assert answered.status_code == 503
    assert answered.json()["error"]["type"] == "draining"
    assert answered.headers["retry-after"] == "5"
    assert streamed.status_code == 200  # the stream had started: it ends with an error event
    name, data = parse_sse(streamed.text)[-1]
    assert name == "error"
    assert '"draining"' in data
    assert in_flight(app) == 0


def test_draining_reaches_every_generator_routed_channels_included() -> None:
    from copygen.cache.tiered import build_cache
    from copygen.service.generators import Generators
    from copygen.service.runtime import Runtime

    config = Settings(warmup=False)
    local, routed = Engine(config, FakeRunner()), Engine(config, FakeRunner())
    app = create_app(config, engine=local)
    generators = Generators(local, {"sms": routed})
    Runtime(config, generators, build_cache(config), drain=app.state.drain)
    begin_drain(app)
    assert local.gate.drain.active
    assert routed.gate.drain.active


class Held:
    """An app whose requests wait for ``release``; ``started`` counts those that began."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.started += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def test_work_in_flight_is_counted_probes_are_not_and_draining_refuses_new_work() -> None:
    held, drain, flights = Held(), Drain(), InFlight()
    transport = httpx.ASGITransport(app=DrainMiddleware(held, drain, flights))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        work = asyncio.create_task(client.get("/v1/copy"))
        probe = asyncio.create_task(client.get("/health/ready"))
        while held.started < 2:
            await asyncio.sleep(0.001)
        assert len(flights) == 1  # the probe is not work in flight
        drain.begin()
        refused = await client.get("/v1/channels")
        held.release.set()
        assert (await work).status_code == 200  # admitted before the drain: it finishes
        assert (await probe).status_code == 200
        assert (await client.get("/health/live")).status_code == 200  # probes stay open
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "draining"
    assert (refused.headers["retry-after"], refused.headers["connection"]) == ("5", "close")
    assert held.started == 3  # the refused request never reached the app
    assert len(flights) == 0


async def test_a_request_cancelled_by_someone_else_is_passed_on_not_answered() -> None:
    held, flights = Held(), InFlight()
    middleware = DrainMiddleware(held, Drain(), flights)
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/v1/copy", "headers": []}
    task = asyncio.create_task(middleware(scope, None, send))
    while not held.started:
        await asyncio.sleep(0.001)
    task.cancel()  # a client that left, or uvicorn: not the drain deadline
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sent == []
    assert len(flights) == 0
