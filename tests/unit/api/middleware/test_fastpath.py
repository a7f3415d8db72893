"""The fast path for byte-identical repeated briefs: same answers as the app, fewer steps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from copygen.api import state as scope_state
from copygen.api.app import create_app
from copygen.api.middleware.fastpath import CopyHitFastPath
from copygen.config import Settings
from copygen.engine.engine import Engine
from tests.builders import started_runtime
from tests.fakes import FakeRunner

BODY = json.dumps({"product": "solar charger", "variants": 2, "seed": 3}).encode()


def _fast_path(app: FastAPI) -> CopyHitFastPath:
    layer = app.middleware_stack
    while not isinstance(layer, CopyHitFastPath):
        layer = layer.app  # type: ignore[union-attr]
    return layer


@pytest.fixture
async def served() -> AsyncIterator[tuple[FastAPI, FakeRunner, httpx.AsyncClient]]:
    runner = FakeRunner()
    config = Settings(warmup=False, max_body_bytes=4096)
    app = create_app(config, engine=Engine(config, runner))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        while (await c.get("/health/ready")).status_code != 200:
            await asyncio.sleep(0.01)
        yield app, runner, c


def _post(c: httpx.AsyncClient, body: bytes) -> object:
    return c.post("/v1/copy", content=body, headers={"content-type": "application/json"})


async def test_the_same_bytes_again_are_answered_by_the_fast_path(
    served: tuple[FastAPI, FakeRunner, httpx.AsyncClient],
) -> None:
    app, runner, c = served
    first = await _post(c, BODY)  # type: ignore[misc]
    second = await _post(c, BODY)  # type: ignore[misc]
    fast = _fast_path(app)
    assert fast.served_total == 1
    assert len(runner.calls) == 1
    one, two = first.json(), second.json()
    assert (two["cached"], two["cache_tier"]) == (True, "l1")
    assert two["variants"] == one["variants"]
    assert set(two) == set(one)
    assert second.headers["x-request-id"]
    assert second.headers["content-type"] == "application/json"

    # The same brief spelled differently takes the normal path, and is a hit there too.
    spaced = json.dumps(json.loads(BODY), indent=2).encode()
    third = await _post(c, spaced)  # type: ignore[misc]
    assert third.json()["cache_tier"] == "l1"
    assert fast.served_total == 1
    assert (await c.get("/v1/cache/stats")).json()["hits"]["l1"] == 2


async def test_only_plain_cache_using_requests_are_remembered(
    served: tuple[FastAPI, FakeRunner, httpx.AsyncClient],
) -> None:
    app, runner, c = served
    refresh = json.dumps({"product": "kettle", "cache": "refresh"}).encode()
    for _ in range(2):
        assert (await _post(c, refresh)).json()["cached"] is False  # type: ignore[attr-defined]
    assert len(runner.calls) == 2
    invalid = b'{"product": ""}'
    for _ in range(2):
        assert (await _post(c, invalid)).status_code == 422  # type: ignore[attr-defined]
    assert _fast_path(app).served_total == 0


async def test_bodies_in_several_chunks_reach_the_app_and_oversized_ones_get_413(
    served: tuple[FastAPI, FakeRunner, httpx.AsyncClient],
) -> None:
    app, _, c = served

    async def chunks() -> AsyncIterator[bytes]:
        yield BODY[:10]
        yield BODY[10:]

    response = await c.post(
        "/v1/copy", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    big = json.dumps({"product": "x", "description": "y" * 5000}).encode()
    response = await _post(c, big)  # type: ignore[misc]
    assert response.status_code == 413  # the body cap answers before the fast path reads it
    assert _fast_path(app).served_total == 0


async def test_tenants_are_remembered_apart() -> None:
    runner = FakeRunner()
    writer = await started_runtime(runner)
    tenant = {"value": "a"}

    async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        from copygen.domain import CopyBrief

        scope["state"][scope_state.COPY_BRIEF] = CopyBrief(product="x")
        await writer.workflow.generate_many([CopyBrief(product="x")], tenant=tenant["value"])

    fast = CopyHitFastPath(app, lambda: writer.workflow)  # type: ignore[arg-type]

    async def call() -> None:
        # As the body cap leaves it: the whole body buffered in the scope's state.
        state = {scope_state.TENANT: tenant["value"], scope_state.BODY: BODY}
        scope = {"type": "http", "method": "POST", "path": "/v1/copy", "state": state}
        messages = [{"type": "http.request", "body": BODY, "more_body": False}]

        async def receive() -> dict:  # type: ignore[type-arg]
            return messages.pop(0)

        async def send(message: dict) -> None:  # type: ignore[type-arg]
            pass

        await fast(scope, receive, send)  # type: ignore[arg-type]

    await call()
    await call()
    assert fast.served_total == 1
    tenant["value"] = "b"
    await call()
    assert fast.served_total == 1  # b's first request goes to the app
    await writer.stop()
