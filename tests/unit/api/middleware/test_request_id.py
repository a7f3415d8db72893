"""The request id: a sane incoming X-Request-ID is kept, anything else replaced by a fresh
one, and the id is both in the response and in scope state for the log line."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from copygen.api.middleware.request_id import RequestIdMiddleware
from copygen.api.state import REQUEST_ID


class Inner:
    """An app that answers 204 and remembers the id the middleware left in scope state."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.seen.append(scope["state"][REQUEST_ID])
        await send({"type": "http.response.start", "status": 204, "headers": [(b"x-own", b"1")]})
        await send({"type": "http.response.body", "body": b""})


async def _get(headers: dict[str, str | bytes]) -> tuple[httpx.Response, str]:
    inner = Inner()
    transport = httpx.ASGITransport(app=RequestIdMiddleware(inner))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/", headers=headers)
    [seen] = inner.seen
    return response, seen


async def test_a_sane_incoming_id_is_kept_in_the_response_and_state() -> None:
    response, seen = await _get({"X-Request-ID": "trace-01:a.b_c"})
    assert response.headers["x-request-id"] == seen == "trace-01:a.b_c"
    assert response.headers["x-own"] == "1"  # the app's own headers stay


@pytest.mark.parametrize(
    "incoming", ["", "has space", "x" * 129, "<script>", "caf\u00e9".encode("latin-1")], ids=repr
)
async def test_anything_else_is_replaced_by_a_fresh_id(incoming: str | bytes) -> None:
    response, seen = await _get({"X-Request-ID": incoming})
    assert re.fullmatch(r"[0-9a-f]{32}", seen)
    assert response.headers["x-request-id"] == seen


async def test_each_request_without_an_id_gets_its_own() -> None:
    first, second = (await _get({}))[1], (await _get({}))[1]
    assert first != second
