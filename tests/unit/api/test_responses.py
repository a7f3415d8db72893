"""One error body for every failure: the domain error → status table (subclasses included),
Retry-After, HTTP errors, validation errors that never echo input, and a bare 500 for the
unexpected."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict

from copygen.api.responses import STATUS, install_error_handlers, validation_detail
from copygen.errors import CopygenError, GenerationFailed, QueueFull
from copygen.observability.metrics import Metrics

CANARY = "CANARY-input-9d2e"


class ShardQueueFull(QueueFull):
    """A subclass the table does not name: it answers as its parent does."""


class Unmapped(CopygenError):
    type = "unmapped"


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    count: int


def _raise(error: Exception) -> None:
    raise error


@pytest.fixture
def app() -> FastAPI:
    app = FastAPI()
    app.state.metrics = Metrics()
    install_error_handlers(app)
    app.add_api_route("/queue", lambda: _raise(ShardQueueFull("the queue is full")))
    app.add_api_route("/failed", lambda: _raise(GenerationFailed("model failed", retry_after_s=9)))
    app.add_api_route("/unmapped", lambda: _raise(Unmapped("odd")))
    app.add_api_route("/bug", lambda: _raise(RuntimeError(CANARY)))
    app.add_api_route("/teapot", lambda: _raise(HTTPException(415)))

    async def create(item: Item) -> Item:
        return item

    app.add_api_route("/items", create, methods=["POST"])
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_a_domain_error_answers_its_parents_status_and_retry_after(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/queue")
    assert (response.status_code, response.headers["retry-after"]) == (429, "1")
    assert response.json() == {
        "error": {"type": "queue_full", "message": "the queue is full", "field": None}
    }
    assert STATUS[QueueFull] == (429, 1)


async def test_an_errors_own_retry_after_wins_over_the_table(client: httpx.AsyncClient) -> None:
    response = await client.get("/failed")
    assert (response.status_code, response.headers["retry-after"]) == (503, "9")


async def test_errors_outside_the_table_are_500_and_unexpected_ones_say_nothing(
    client: httpx.AsyncClient,
) -> None:
    unmapped = await client.get("/unmapped")
    assert (unmapped.status_code, unmapped.json()["error"]["type"]) == (500, "unmapped")
    assert "retry-after" not in unmapped.headers
    bug = await client.get("/bug")
    assert bug.status_code == 500
    assert bug.json() == {"error": {"type": "internal_error", "message": "internal error",
                                    "field": None}}  # fmt: skip
    assert CANARY not in bug.text


async def test_http_errors_get_a_type_and_the_one_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/teapot")
    assert response.status_code == 415
    assert response.json()["error"]["type"] == "unsupported_media_type"


async def test_validation_names_the_field_counts_the_rest_and_never_echoes_input(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/items", json={"name": [CANARY], "count": CANARY})
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["type"], error["field"]) == ("validation_error", "name")
    assert error["message"].endswith("(and 1 more error(s))")
    assert CANARY not in response.text
    unknown = await client.post("/items", json={"name": "x", "count": 1, CANARY: 1})
    assert unknown.json()["error"]["field"] is None  # the caller's own key is not named
    assert CANARY not in unknown.text
    broken = await client.post("/items", content=b"{", headers={"content-type": "application/json"})
    assert (broken.status_code, broken.json()["error"]["type"]) == (400, "invalid_json")


async def test_refusals_on_purpose_are_counted_in_the_apps_metrics(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await client.get("/queue")
    await client.get("/unmapped")  # not a rejection reason: not counted
    exposition = app.state.metrics.exposition().decode()
    assert 'copygen_rejections_total{reason="queue_full"} 1.0' in exposition
    assert "unmapped" not in exposition


def test_validation_detail_without_errors_is_a_plain_message() -> None:
    assert validation_detail([]) == ("invalid request", None)
    assert validation_detail([{"msg": "bad", "loc": ("query", "limit")}]) == ("bad", "limit")
