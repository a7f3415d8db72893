"""A NUL character in brand or feedback text, over an app on a real PostgreSQL server (which
refuses NUL in text columns): 422 with the one error shape, never 503 store_unavailable, and
the store keeps working."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from copygen.api.app import create_app
from copygen.config import Settings
from copygen.engine.engine import Engine
from tests.client import serving
from tests.fakes import FakeRunner
from tests.services import PostgresServer

NUL = "Warm\x00plain"


@pytest.fixture
async def client(postgres: PostgresServer) -> AsyncIterator[httpx.AsyncClient]:
    config = Settings(warmup=False, database_url=postgres.new_database())  # type: ignore[arg-type]
    app = create_app(config, engine=Engine(config, FakeRunner()))
    async with serving(app) as c:
        yield c


def _refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["type"], error["field"]) == ("validation_error", field)
    assert "Warm" not in response.text


async def test_nul_in_brand_text_is_a_422_not_a_store_outage(client: httpx.AsyncClient) -> None:
    example = {"channel": "sms", "text": NUL}
    for body, field in [
        ({"name": "Acme", "voice": NUL}, "voice"),
        ({"name": NUL}, "name"),
        ({"name": "Acme", "audience": NUL}, "audience"),
        ({"name": "Acme", "facts": [NUL]}, "facts"),
        ({"name": "Acme", "forbidden_terms": [NUL]}, "forbidden_terms"),
        ({"name": "Acme", "examples": [example]}, "examples.0.text"),
    ]:
        _refused(await client.post("/v1/brands", json=body), field)
    brand = await client.post("/v1/brands", json={"name": "Acme", "voice": "Warm, plain"})
    assert brand.status_code == 201, brand.text
    url = f"/v1/brands/{brand.json()['id']}"
    _refused(await client.patch(url, json={"voice": NUL}), "voice")
    _refused(await client.post(f"{url}/examples", json={"example": example}), "example.text")
    assert (await client.get(url)).json()["voice"] == "Warm, plain"


async def test_nul_in_feedback_is_a_422_not_a_store_outage(client: httpx.AsyncClient) -> None:
    copy = await client.post("/v1/copy", json={"product": "Solar lamp", "variants": 1})
    assert copy.status_code == 200, copy.text
    rated = {"copy_id": copy.json()["id"], "variant": 0, "rating": "up"}
    for body, field in [
        ({**rated, "note": NUL}, "note"),
        ({**rated, "edited_text": NUL}, "edited_text"),
        ({**rated, "copy_id": NUL}, "copy_id"),
        ({**rated, "variant": NUL}, "variant"),
    ]:
        _refused(await client.post("/v1/feedback", json=body), field)
    ok = await client.post("/v1/feedback", json={**rated, "note": "Warm, plain"})
    assert ok.status_code == 201, ok.text


async def test_nul_in_a_brand_id_or_list_parameter_is_a_422_not_a_store_outage(
    client: httpx.AsyncClient,
) -> None:
    """Every id or cursor a caller sends reaches PostgreSQL as text: the brief's brand, the
    list routes' ``after`` and ``brand`` parameters, and the ids in paths."""
    brief = {"product": "Solar lamp", "variants": 1, "brand": NUL}
    _refused(await client.post("/v1/copy", json=brief), "brand")
    batch = await client.post("/v1/copy/batch", json={"items": [brief]})
    [item] = batch.json()["results"]
    assert (item["error"]["type"], item["error"]["field"]) == ("validation_error", "brand")
    job = await client.post("/v1/jobs", json={"items": [brief]})
    assert (job.status_code, job.json()["error"]["field"]) == (422, "items.0.brand")
    _refused(await client.get("/v1/brands", params={"after": NUL}), "after")
    _refused(await client.get("/v1/feedback", params={"brand": NUL}), "brand")
    for method, path in [
        ("GET", "/v1/brands/"), ("PATCH", "/v1/brands/"), ("DELETE", "/v1/brands/"),
        ("GET", "/v1/jobs/"), ("DELETE", "/v1/jobs/"),
    ]:  # fmt: skip
        body = {"voice": "Warm"} if method == "PATCH" else None
        response = await client.request(method, path + "Warm%00plain", json=body)
        field = "job_id" if "jobs" in path else "brand_id"
        _refused(response, field)
    assert (await client.get("/v1/brands", params={"after": "brand-none"})).status_code == 200
