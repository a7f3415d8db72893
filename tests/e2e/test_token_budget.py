"""A real `copygen serve` with keys and a 400-token hourly budget (security review #1): streamed
briefs, which generated without limit, are charged until the budget refuses them with 429."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.services import Server, start_server, stop_server, wait_ready

KEY = "budget-tenant-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
PRODUCTS = ("Solar lantern", "Trail shoes", "Cold brew", "Desk lamp", "Rain jacket",
            "Water bottle", "Camp stove", "Head torch", "Sleeping bag", "Day pack")  # fmt: skip


@pytest.fixture(scope="module")
def metered() -> Iterator[Server]:
    running = start_server(env={"COPYGEN_API_KEYS": f"shop:{KEY}",
                                "COPYGEN_TOKEN_BUDGET": "400/hour"})  # fmt: skip
    try:
        wait_ready(running)
        yield running
    finally:
        stop_server(running)


def test_streamed_briefs_are_charged_until_the_budget_refuses(metered: Server) -> None:
    statuses = []
    for product in PRODUCTS:
        brief = {"product": product, "channel": "sms", "variants": 1, "stream": True}
        response = httpx.post(f"{metered.url}/v1/copy", json=brief, headers=AUTH, timeout=120)
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
        assert response.status_code == 200, response.text
        assert "event: result" in response.text
    assert statuses[-1] == 429, statuses
    assert len(statuses) >= 2  # the first was served
    assert response.json()["error"]["type"] == "rate_limited"
    assert int(response.headers["retry-after"]) >= 1
    # Reading what was made is not generating: still served.
    assert httpx.get(f"{metered.url}/v1/channels", headers=AUTH).status_code == 200
