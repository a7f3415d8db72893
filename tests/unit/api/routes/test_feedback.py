"""Feedback through the app (fake runner, SQLite): rating a variant of a response, and the
export's pages (X-Next-Cursor) and ``since`` in any time zone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from copygen.api.routes.feedback import NDJSON
from tests.builders import app
from tests.client import serving
from tests.fakes import FakeRunner, spelled

TOKYO, NEW_YORK = timezone(timedelta(hours=9)), timezone(timedelta(hours=-5))


def _lamp(request: object, row: int) -> str:
    return f"A solar lamp for every porch {spelled(row + 1)}"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app(FakeRunner(_lamp), data_dir=tmp_path)) as c:
        yield c


async def _rated(client: httpx.AsyncClient) -> str:
    """A response rated twice (variant 0 up, variant 1 down): two preference pairs."""
    body = {"product": "solar lamp", "channel": "sms", "variants": 2}
    copy = (await client.post("/v1/copy", json=body)).json()
    for variant, rating in ((0, "up"), (1, "down")):
        rated = await client.post(
            "/v1/feedback", json={"copy_id": copy["id"], "variant": variant, "rating": rating}
        )
        assert rated.status_code == 201, rated.text
        assert (rated.json()["variant"], rated.json()["rating"]) == (variant, rating)
    return str(copy["id"])


async def test_the_export_comes_in_pages_linked_by_a_cursor(client: httpx.AsyncClient) -> None:
    await _rated(client)
    first = await client.get("/v1/feedback", params={"limit": 1})
    assert first.headers["content-type"].startswith(NDJSON)
    assert len(first.text.splitlines()) == 1
    cursor = first.headers["x-next-cursor"]
    rest = await client.get("/v1/feedback", params={"limit": 1, "after": cursor})
    assert len(rest.text.splitlines()) == 1
    assert rest.text != first.text
    last = await client.get("/v1/feedback", params={"after": rest.headers["x-next-cursor"]})
    assert (last.text, last.headers.get("x-next-cursor")) == ("", None)


@pytest.mark.parametrize(
    ("since", "pairs"),
    [
        (lambda now: (now - timedelta(minutes=5)).astimezone(TOKYO).isoformat(), 2),
        (lambda now: (now + timedelta(minutes=5)).astimezone(NEW_YORK).isoformat(), 0),
        (lambda now: "0001-01-01T00:00:00+05:00", 2),  # earlier than UTC can say: the start
    ],
    ids=["before-in-tokyo", "after-in-new-york", "year-one"],
)
async def test_since_is_read_in_the_time_zone_it_names(
    client: httpx.AsyncClient, since: Callable[[datetime], str], pairs: int
) -> None:
    await _rated(client)
    now = datetime.now(UTC)
    response = await client.get("/v1/feedback", params={"since": since(now)})
    assert response.status_code == 200
    assert len(response.text.splitlines()) == pairs


async def test_rating_a_response_this_server_never_gave_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/feedback", json={"copy_id": "copy-unknown", "variant": 0, "rating": "up"}
    )
    assert (response.status_code, response.json()["error"]["type"]) == (404, "not_found")
