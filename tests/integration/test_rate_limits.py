"""Rate limits shared by two app instances through one real Redis, and still enforced by the
local fallback with Redis gone (RELIABILITY row 9)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from limits import parse
from redis.asyncio import Redis

from copygen.api.app import create_app
from copygen.budget import budget_identity
from copygen.config import Settings
from copygen.engine.engine import Engine
from tests.fakes import FakeRunner
from tests.services import RedisServer

KEY_A = "tenant-a-0123456789abcdef"
KEY_B = "tenant-b-0123456789abcdef"


@asynccontextmanager
async def _instance(server: RedisServer, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    config = Settings(
        warmup=False,
        redis_url=server.url,
        api_keys=f"a:{KEY_A},b:{KEY_B}",  # type: ignore[arg-type]
        **settings,  # type: ignore[arg-type]
    )
    app = create_app(config, engine=Engine(config, FakeRunner()))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        while (await c.get("/health/ready")).status_code != 200:
            await asyncio.sleep(0.01)
        yield c


async def _post(c: httpx.AsyncClient, key: str, i: int) -> httpx.Response:
    body = {"product": f"lamp {i}", "variants": 1}
    return await c.post("/v1/copy", json=body, headers={"Authorization": f"Bearer {key}"})


async def test_two_instances_share_one_budget_per_key_and_redis_loss_falls_back_locally(
    redis_server: RedisServer,
) -> None:
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(_instance(redis_server, rate_limit="4/minute"))
        two = await stack.enter_async_context(_instance(redis_server, rate_limit="4/minute"))
        statuses = [(await _post(c, KEY_A, i)).status_code for i, c in enumerate([one, two] * 3)]
        assert statuses == [200, 200, 200, 200, 429, 429]  # one budget across both instances
        refused = await _post(two, KEY_A, 99)
        assert refused.status_code == 429
        assert refused.json()["error"]["type"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["ratelimit-limit"] == "4"
        assert refused.headers["ratelimit-remaining"] == "0"
        ok = await _post(one, KEY_B, 0)  # another key is unaffected
        assert ok.status_code == 200
        assert ok.headers["ratelimit-remaining"] == "3"

        redis_server.kill()
        local = [(await _post(one, KEY_B, 10 + i)).status_code for i in range(6)]
        # Instance one's own limiter takes over: a fresh local window, still at most 4.
        assert local.count(200) <= 4
        assert local[-1] == 429
        metrics = (await one.get("/metrics")).text
        assert 'copygen_rejections_total{reason="rate_limit"}' in metrics


async def test_a_token_budget_refuses_once_spent(redis_server: RedisServer) -> None:
    async with _instance(redis_server, token_budget="200/minute") as c:
        statuses = [(await _post(c, KEY_A, i)).status_code for i in range(12)]
        assert statuses[0] == 200
        assert 429 in statuses
        first_refusal = statuses.index(429)
        assert all(status == 429 for status in statuses[first_refusal:])


async def test_simultaneous_requests_on_two_instances_overshoot_the_budget_by_one_at_most(
    redis_server: RedisServer,
) -> None:
    """Each generation call reserves its worst case in Redis (one INCRBY) before it runs, so
    20 briefs sent at once to two replicas cannot all pass a check made before any is
    charged; what stays counted is what they really cost."""
    budget = 1000
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(_instance(redis_server, token_budget="1000/hour"))
        two = await stack.enter_async_context(_instance(redis_server, token_budget="1000/hour"))
        answers = await asyncio.gather(*(_post(c, KEY_A, i) for i, c in enumerate([one, two] * 10)))
        served = [a.json() for a in answers if a.status_code == 200]
        refused = [a for a in answers if a.status_code == 429]
        assert served
        assert refused
        assert all(a.json()["error"]["type"] == "rate_limited" for a in refused)
        assert all(int(a.headers["retry-after"]) >= 1 for a in refused)
        costs = [s["usage"]["prompt_tokens"] + s["usage"]["completion_tokens"] for s in served]
        key = parse(f"{budget}/hour").key_for(budget_identity("a"))
        redis = Redis.from_url(redis_server.url)
        spent = int(await redis.get(f"copygen:limits:{key}") or 0)
        await redis.aclose()
        assert spent == sum(costs)
        assert spent <= budget + max(costs)
