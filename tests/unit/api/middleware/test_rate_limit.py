"""The request limit at the edge, through the app (fake runner): RateLimit-* headers counting
down, 429 with Retry-After past the limit, probes never counted, and every API key with a
budget of its own."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import httpx

from copygen.api.middleware.rate_limit import RateLimitMiddleware
from tests.builders import app
from tests.client import serving
from tests.fakes import FakeRunner

KEYS = "alpha:alpha-0123456789abcdef,beta:beta-0123456789abcdef"
ALPHA = {"Authorization": "Bearer alpha-0123456789abcdef"}
BETA = {"Authorization": "Bearer beta-0123456789abcdef"}


def _limited(**settings: object) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    built = app(FakeRunner(), rate_limit="2/minute", **settings)
    assert any(m.cls is RateLimitMiddleware for m in built.user_middleware)
    return serving(built)


async def test_answers_count_down_and_the_request_past_the_limit_is_429() -> None:
    async with _limited() as client:
        first, second, third = [await client.get("/v1/channels") for _ in range(3)]
    assert (first.headers["ratelimit-limit"], first.headers["ratelimit-remaining"]) == ("2", "1")
    assert second.headers["ratelimit-remaining"] == "0"
    assert 0 < int(first.headers["ratelimit-reset"]) <= 60
    assert third.status_code == 429
    assert third.json()["error"]["type"] == "rate_limited"
    assert 1 <= int(third.headers["retry-after"]) <= 60
    assert third.headers["ratelimit-remaining"] == "0"


async def test_probes_and_metrics_are_never_limited() -> None:
    async with _limited() as client:
        probes = [await client.get(path) for path in ("/health/ready", "/metrics", "/health") * 3]
        after = await client.get("/v1/channels")
    assert {p.status_code for p in probes} == {200}
    assert not any("ratelimit-limit" in p.headers for p in probes)
    assert after.headers["ratelimit-remaining"] == "1"  # the probes took nothing
    assert 'copygen_rejections_total{reason="rate_limit"} 0.0' in probes[1].text


async def test_each_api_key_has_a_budget_of_its_own_and_refusals_are_counted() -> None:
    async with _limited(api_keys=KEYS) as client:
        alpha = [(await client.get("/v1/channels", headers=ALPHA)).status_code for _ in range(3)]
        beta = (await client.get("/v1/channels", headers=BETA)).status_code
        metrics = (await client.get("/metrics")).text
    assert alpha == [200, 200, 429]
    assert beta == 200
    assert 'copygen_rejections_total{reason="rate_limit"} 1.0' in metrics
