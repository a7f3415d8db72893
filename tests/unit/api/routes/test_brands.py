"""The brand routes through the app (fake runner, SQLite): an example given directly joins the
brand under If-Match like any write, "*" matches any version, and the examples route takes
exactly one of its two sources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from copygen.api.routes.brands import ERRORS
from tests.builders import app
from tests.client import serving
from tests.fakes import FakeRunner

KEY = "key-alice-0123456789abcdef"
ALICE = {"Authorization": f"Bearer {KEY}"}
EXAMPLE = {"channel": "sms", "text": "Sunny days ahead"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app(FakeRunner(), data_dir=tmp_path, api_keys=f"alice:{KEY}")) as c:
        yield c


async def _brand(client: httpx.AsyncClient) -> str:
    created = await client.post("/v1/brands", json={"name": "Acme"}, headers=ALICE)
    return f"/v1/brands/{created.json()['id']}"


async def test_an_example_given_directly_is_a_versioned_write(client: httpx.AsyncClient) -> None:
    url = await _brand(client)
    added = await client.post(
        f"{url}/examples", json={"example": EXAMPLE}, headers={**ALICE, "If-Match": '"1"'}
    )
    assert (added.status_code, added.headers["etag"]) == (201, '"2"')
    assert added.json()["examples"] == [{**EXAMPLE, "source": "manual"}]
    stale = await client.post(
        f"{url}/examples", json={"example": EXAMPLE}, headers={**ALICE, "If-Match": '"1"'}
    )
    assert stale.status_code == 412
    anyway = await client.post(
        f"{url}/examples", json={"example": EXAMPLE}, headers={**ALICE, "If-Match": "*"}
    )
    assert (anyway.status_code, anyway.headers["etag"]) == (201, '"3"')


async def test_the_examples_route_needs_exactly_one_source(client: httpx.AsyncClient) -> None:
    url = await _brand(client)
    neither = await client.post(f"{url}/examples", json={}, headers=ALICE)
    assert (neither.status_code, neither.json()["error"]["field"]) == (422, "feedback_id")
    assert (await client.get(url, headers=ALICE)).json()["version"] == 1


async def test_a_weak_etag_matches_and_a_malformed_one_never_does(
    client: httpx.AsyncClient,
) -> None:
    url = await _brand(client)
    weak = await client.patch(url, json={"voice": "plain"}, headers={**ALICE, "If-Match": 'W/"1"'})
    assert weak.status_code == 200
    malformed = await client.patch(url, json={"voice": "x"}, headers={**ALICE, "If-Match": "two"})
    assert malformed.status_code == 412


async def test_every_brand_route_documents_its_errors(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    documented = {
        (path, method): set(operation["responses"])
        for path, methods in paths.items() if path.startswith("/v1/brands")
        for method, operation in methods.items()
    }  # fmt: skip
    assert len(documented) == 7
    assert all({str(code) for code in ERRORS} <= codes for codes in documented.values())
