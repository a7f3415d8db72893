"""One deadline, end to end: a real server whose COPYGEN_REQUEST_TIMEOUT_S is 3 s, a brief no
round can satisfy (ten LinkedIn posts that must carry a keyword no model writes). Every
answer comes within 4.5 s: 504 in the error shape, or what was delivered with
``complete: false`` — never a fresh timeout below the entry point."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.services import Server, start_server, stop_server, wait_ready

BRIEF = {
    "product": "Trail running shoes",
    "channel": "linkedin_post",
    "variants": 10,
    "keywords": ["zqxvortlamb"],
    "cache": "bypass",
}


@pytest.fixture(scope="module")
def short_server() -> Iterator[Server]:
    running = start_server({"COPYGEN_REQUEST_TIMEOUT_S": "3"})
    try:
        wait_ready(running)
        yield running
    finally:
        stop_server(running)


def _timed(server: Server, headers: dict[str, str] | None = None) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = httpx.post(f"{server.url}/v1/copy", json=BRIEF, headers=headers, timeout=30)
    return time.monotonic() - started, response


def _answered_in_time(elapsed: float, response: httpx.Response, budget_s: float) -> None:
    assert elapsed < budget_s + 1.5, f"{elapsed:.2f} s"
    if response.status_code == 504:
        assert response.json()["error"]["type"] == "deadline_exceeded"
    else:
        assert response.status_code == 200
        assert response.json()["complete"] is False


def test_an_unsatisfiable_brief_answers_by_the_request_deadline_every_time(
    short_server: Server,
) -> None:
    for _ in range(3):
        elapsed, response = _timed(short_server)
        _answered_in_time(elapsed, response, 3.0)


def test_a_callers_own_timeout_tightens_the_deadline(short_server: Server) -> None:
    elapsed, response = _timed(short_server, {"X-Request-Timeout": "1"})
    _answered_in_time(elapsed, response, 1.0)
