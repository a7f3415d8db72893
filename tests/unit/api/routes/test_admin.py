"""Cache administration through the app (fake runner): invalidation narrowed to one model and
one channel (its id in any case), leaving every other entry served from the cache."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from copygen.api.routes.admin import CacheDeleted
from tests.builders import app
from tests.client import serving
from tests.fakes import FakeRunner, spelled

SMS = {"product": "kettle", "channel": "sms", "variants": 1}
EMAIL = {"product": "kettle", "channel": "email_subject", "variants": 1}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    runner = FakeRunner(lambda request, row: f"A kettle for every kitchen {spelled(row + 1)}")
    async with serving(app(runner)) as c:
        for body in (SMS, EMAIL):
            assert (await c.post("/v1/copy", json=body)).status_code == 200
        yield c


async def _cached(client: httpx.AsyncClient, body: dict[str, object]) -> bool:
    return bool((await client.post("/v1/copy", json=body)).json()["cached"])


async def test_another_models_invalidation_deletes_nothing_here(client: httpx.AsyncClient) -> None:
    response = await client.delete("/v1/cache", params={"model": "org/another-model"})
    assert CacheDeleted.model_validate(response.json()).deleted == {"l1": 0, "l2": 0}
    assert await _cached(client, SMS)
    assert await _cached(client, EMAIL)


async def test_one_model_and_one_channel_any_case_deletes_just_those(
    client: httpx.AsyncClient,
) -> None:
    response = await client.delete("/v1/cache", params={"model": "fake/model", "channel": "SMS"})
    assert response.json() == {"deleted": {"l1": 1, "l2": 0}}
    assert not await _cached(client, SMS)
    assert await _cached(client, EMAIL)


async def test_the_stats_count_what_invalidation_left(client: httpx.AsyncClient) -> None:
    await client.delete("/v1/cache", params={"channel": "email_subject"})
    stats = (await client.get("/v1/cache/stats")).json()
    assert stats["l1"]["entries"] == 1
    assert stats["l2"] is None  # no Redis configured
