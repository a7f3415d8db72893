"""One log line per request, and the same request to the HTTP metrics hook: the route template
only for known routes, the route's own figures, 499 for a client that left, 500 for a crash."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

import pytest
import structlog
from starlette.types import Receive, Scope, Send

from copygen.api.middleware.request_log import CLIENT_CLOSED, RequestLogMiddleware
from copygen.api.state import LOG_FIELDS, REQUEST_ID

ROUTES = frozenset({"/v1/copy"})


async def answer(scope: Scope, receive: Receive, send: Send) -> None:
    scope["state"][LOG_FIELDS] = {"cache_tier": "l1", "completion_tokens": 12}
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _serve(
    app: Any, path: str = "/v1/copy", *, routes: frozenset[str] = ROUTES
) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """Run one request through the middleware: (log lines, on_done calls)."""
    done: list[tuple[Any, ...]] = []
    middleware = RequestLogMiddleware(app, routes=lambda: routes, on_done=lambda *a: done.append(a))
    scope = {"type": "http", "method": "POST", "path": path, "headers": [],
             "state": {REQUEST_ID: "req-1"}}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        pass

    with structlog.testing.capture_logs() as logs, suppress(asyncio.CancelledError, RuntimeError):
        await middleware(scope, receive, send)
    return logs, done


async def test_a_request_is_one_line_with_its_route_status_and_figures() -> None:
    [line], [(route, method, status, seconds)] = await _serve(answer)
    assert (route, method, status) == ("/v1/copy", "POST", 201)
    assert seconds > 0
    assert line["event"] == "request"
    assert (line["request_id"], line["route"], line["status"]) == ("req-1", "/v1/copy", 201)
    assert (line["cache_tier"], line["completion_tokens"]) == ("l1", 12)
    assert line["latency_ms"] >= 0


async def test_a_path_that_is_no_route_is_logged_without_a_template() -> None:
    [line], [(route, *_)] = await _serve(answer, "/v1/copy/../../etc/passwd")
    assert route is None
    assert line["route"] is None


async def test_a_client_that_left_is_logged_499_and_the_cancellation_goes_on() -> None:
    async def left(scope: Scope, receive: Receive, send: Send) -> None:
        raise asyncio.CancelledError

    [line], [(_, _, status, _)] = await _serve(left)
    assert line["status"] == status == CLIENT_CLOSED


async def test_an_app_that_crashed_before_answering_is_logged_500() -> None:
    async def crashed(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("bug")

    [line], [(_, _, status, _)] = await _serve(crashed)
    assert line["status"] == status == 500


async def test_cancellation_and_errors_reach_the_caller() -> None:
    async def left(scope: Scope, receive: Receive, send: Send) -> None:
        raise asyncio.CancelledError

    middleware = RequestLogMiddleware(left)
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "state": {}}
    with pytest.raises(asyncio.CancelledError), structlog.testing.capture_logs():
        await middleware(scope, None, None)  # type: ignore[arg-type]


async def test_other_scopes_pass_through_unlogged() -> None:
    seen: list[str] = []

    async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    with structlog.testing.capture_logs() as logs:
        await RequestLogMiddleware(lifespan)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert (seen, logs) == (["lifespan"], [])
