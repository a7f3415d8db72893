"""The drain deadline: what is still running is answered by copygen, never cancelled bare."""

from __future__ import annotations

import asyncio
import threading

import httpx

from copygen.api.app import abort_in_flight, begin_drain, create_app, in_flight
from copygen.config import Settings
from copygen.engine.engine import Engine
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
