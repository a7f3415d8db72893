"""Server-Sent Events from an async stream of payloads: named and unnamed events, payloads as
JSON or as given, and an error after the stream began as a final ``error`` event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI

from copygen.api.sse import sse_response
from copygen.errors import DeadlineExceeded
from tests.client import parse_sse


def _client(events: list[tuple[str | None, Any]], fail: bool = False) -> httpx.AsyncClient:
    async def stream() -> AsyncIterator[tuple[str | None, Any]]:
        for event in events:
            yield event
        if fail:
            raise DeadlineExceeded("generation did not finish within 1 s", field="product")

    app = FastAPI()
    app.add_api_route("/events", lambda: sse_response(stream()))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_events_carry_their_name_and_json_and_done_goes_as_it_is() -> None:
    async with _client([("draft", {"row": 0, "delta": "Go"}), (None, "[DONE]")]) as client:
        response = await client.get("/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    assert parse_sse(response.text) == [("draft", '{"row": 0, "delta": "Go"}'), (None, "[DONE]")]


async def test_an_error_once_streaming_is_a_final_error_event_with_the_usual_body() -> None:
    async with _client([("draft", {"row": 0})], fail=True) as client:
        response = await client.get("/events")
    assert response.status_code == 200  # too late to change it
    events = parse_sse(response.text)
    assert [name for name, _ in events] == ["draft", "error"]
    assert json.loads(events[-1][1]) == {
        "error": {
            "type": "deadline_exceeded",
            "message": "generation did not finish within 1 s",
            "field": "product",
        }
    }
