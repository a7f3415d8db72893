"""POST /v1/admin/profile: a speedscope file of the live process (the event loop and the
model thread among its threads), for admin keys only, one at a time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from copygen.api.app import create_app
from copygen.config import Settings
from copygen.engine.engine import Engine
from tests.client import wait_ready
from tests.fakes import FakeRunner

ADMIN = "ops-admin-key-0123456789"
PLAIN = "acme-plain-key-0123456789"


@pytest.fixture
async def app() -> FastAPI:
    config = Settings(warmup=False, api_keys=f"ops:{ADMIN}:admin,acme:{PLAIN}")  # type: ignore[arg-type]
    return create_app(config, engine=Engine(config, FakeRunner()))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        yield c


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"type", "message", "field"}
    return str(error["type"])


async def test_an_admin_gets_a_speedscope_profile_of_the_loop_and_the_model_thread(
    client: httpx.AsyncClient,
) -> None:
    # The model thread exists once a job ran on it.
    brief = {"product": "Lamp", "variants": 1}
    assert (await client.post("/v1/copy", json=brief, headers=_as(ADMIN))).status_code == 200
    response = await client.post("/v1/admin/profile?seconds=0.3", headers=_as(ADMIN))
    assert response.status_code == 200
    assert "speedscope.json" in response.headers["content-disposition"]
    profile = json.loads(response.content)
    assert profile["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    threads = [one["name"] for one in profile["profiles"]]
    assert threads[0] == "MainThread"
    assert any(name.startswith("copygen-model") for name in threads)
    frames = profile["shared"]["frames"]
    loop = profile["profiles"][0]
    assert loop["type"] == "sampled"
    assert loop["samples"]
    assert all(0 <= i < len(frames) for stack in loop["samples"] for i in stack)
    assert 200 <= loop["endValue"] <= 2000  # ms, about the 0.3 s asked for


async def test_a_plain_key_is_refused(client: httpx.AsyncClient) -> None:
    refused = await client.post("/v1/admin/profile?seconds=0.1", headers=_as(PLAIN))
    assert _error(refused, 403) == "forbidden"
    assert _error(await client.post("/v1/admin/profile?seconds=0.1"), 401) == "unauthorized"


@pytest.mark.parametrize("seconds", ["0", "-1", "31", "nan", "soon"])
async def test_the_duration_is_bounded(client: httpx.AsyncClient, seconds: str) -> None:
    response = await client.post(f"/v1/admin/profile?seconds={seconds}", headers=_as(ADMIN))
    assert _error(response, 422) == "validation_error"
    assert response.json()["error"]["field"] == "seconds"


async def test_a_second_profile_while_one_runs_is_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    first = asyncio.create_task(client.post("/v1/admin/profile?seconds=1", headers=_as(ADMIN)))
    while not app.state.runtime.profiler.running:
        await asyncio.sleep(0.01)
    second = await client.post("/v1/admin/profile?seconds=1", headers=_as(ADMIN))
    assert _error(second, 429) == "profile_running"
    assert int(second.headers["retry-after"]) >= 1
    assert (await first).status_code == 200
