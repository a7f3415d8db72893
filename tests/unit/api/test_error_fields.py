"""An error's ``field`` names only what the schema knows: a field name the caller made up
(markup, say) never comes back, in any route's error body. Over the app with a fake runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from copygen.api.app import create_app
from copygen.config import Settings
from copygen.engine.engine import Engine
from tests.client import serving
from tests.fakes import FakeRunner

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    config = Settings(warmup=False, data_dir=tmp_path)  # type: ignore[arg-type]
    app = create_app(config, engine=Engine(config, FakeRunner()))
    async with serving(app) as c:
        yield c


CHAT = {"messages": [{"role": "user", "content": "Hi"}]}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/copy", {"product": "x", XSS: 1}, None),
        ("/v1/copy", {"product": "x", "brand_safety": {XSS: 1}}, None),
        ("/v1/brands", {"name": "Acme", XSS: 1}, None),
        ("/v1/brands", {"name": "Acme", "examples": [{"channel": "sms", "text": "x", XSS: 1}]},
         "examples.0"),
        ("/v1/chat/completions", {**CHAT, XSS: 1}, None),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi", XSS: 1}]},
         "messages.0"),
        ("/v1/chat/completions", {**CHAT, "stream_options": {XSS: True}}, "stream_options"),
        ("/v1/feedback", {"copy_id": "c", "variant": 0, "rating": "up", XSS: 1}, None),
    ],
)  # fmt: skip
async def test_a_field_name_the_caller_chose_is_never_echoed(
    client: httpx.AsyncClient, path: str, body: dict[str, object], field: str | None
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["type"], error["field"]) == ("validation_error", field)
    assert "onerror" not in response.text
    assert "<img" not in response.text


async def test_a_batch_item_with_a_made_up_field_is_refused_without_its_name(
    client: httpx.AsyncClient,
) -> None:
    items = [{"product": "x", XSS: 1}, {"product": "x", "variants": 99}]
    response = await client.post("/v1/copy/batch", json={"items": items})
    assert response.status_code == 200, response.text
    errors = [item["error"] for item in response.json()["results"]]
    assert [e["field"] for e in errors] == [None, "variants"]
    assert "onerror" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/copy", {"product": "x", "variants": 99}, "variants"),
        ("POST", "/v1/copy", {"product": "x", "keywords": ["k"] * 11}, "keywords"),
        ("POST", "/v1/copy", {"product": "x", "keywords": [""]}, "keywords.0"),
        ("POST", "/v1/brands", {"name": ""}, "name"),
        ("POST", "/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]},
         "messages.0.role"),
        ("GET", "/v1/brands?limit=0", None, "limit"),
    ],
)  # fmt: skip
async def test_fields_the_schema_knows_are_still_named(
    client: httpx.AsyncClient, method: str, path: str, body: object, field: str
) -> None:
    response = await client.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
