"""Discovery through the app: every channel, tone and framework of the copywriting tables, each
once, with the fields a client needs to build a form from them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from copygen.api.routes.catalog import router
from copygen.copywriting.channels import CHANNELS
from copygen.copywriting.frameworks import FRAMEWORKS, TONES
from copygen.copywriting.prompts import FIELD_CAPS
from tests.builders import app
from tests.client import serving
from tests.fakes import FakeRunner


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app(FakeRunner()), ready=False) as c:
        yield c


async def test_every_channel_is_listed_once_as_the_table_has_it(client: httpx.AsyncClient) -> None:
    channels = (await client.get("/v1/channels")).json()["channels"]
    assert [c["id"] for c in channels] == list(CHANNELS)
    for listed in channels:
        channel = CHANNELS[listed["id"]]
        assert (listed["limit"], listed["limit_kind"], listed["counting"]) == (
            channel.limit, channel.kind, channel.counting,
        )  # fmt: skip
        assert listed["name"] == channel.name
        assert listed["temperature"] == channel.temperature


async def test_tones_are_presets_plus_free_text_within_the_prompt_cap(
    client: httpx.AsyncClient,
) -> None:
    tones = (await client.get("/v1/tones")).json()
    assert [t["id"] for t in tones["tones"]] == list(TONES)
    assert all(t["description"] for t in tones["tones"])
    assert (tones["free_text"], tones["max_length"]) == (True, FIELD_CAPS["tone"])


async def test_frameworks_carry_their_version_and_stages(client: httpx.AsyncClient) -> None:
    frameworks = (await client.get("/v1/frameworks")).json()["frameworks"]
    assert [f["id"] for f in frameworks] == list(FRAMEWORKS)
    for listed in frameworks:
        framework = FRAMEWORKS[listed["id"]]
        assert (listed["version"], listed["stages"]) == (framework.version, list(framework.stages))
        assert listed["description"] == framework.fragment


async def test_discovery_needs_no_runtime_and_no_model() -> None:
    bare = FastAPI()
    bare.include_router(router)  # no lifespan, no engine: the tables alone
    transport = httpx.ASGITransport(app=bare)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answers = [
            await client.get(path) for path in ("/v1/channels", "/v1/tones", "/v1/frameworks")
        ]
    assert [a.status_code for a in answers] == [200, 200, 200]
