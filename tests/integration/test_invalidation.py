"""Invalidation across replicas on a real Redis: pub/sub for the live path, the epoch for
messages a replica missed, and a clear 503 when Redis cannot be told."""

from __future__ import annotations

import asyncio

import pytest

from copygen.cache.keys import key_pattern
from copygen.domain import CopyBrief
from copygen.errors import CacheUnavailable
from copygen.service.runtime import Runtime
from tests.builders import started_runtime
from tests.fakes import FakeRunner
from tests.services import RedisServer

BRIEF = CopyBrief(product="solar charger", channel="sms", variants=1, seed=1)
EVERYTHING = (key_pattern(), lambda key: True)


async def _replica(server: RedisServer) -> Runtime:
    writer = await started_runtime(
        FakeRunner(), redis_url=server.url, cache_invalidation_check_s=0.3
    )
    for _ in range(100):  # subscribed before the test goes on
        if writer.cache.invalidation is not None and writer.cache.invalidation.connected:
            return writer
        await asyncio.sleep(0.01)
    raise AssertionError("never subscribed")


async def _until_fresh(writer: Runtime, limit_s: float) -> float:
    """Seconds until ``writer`` answers BRIEF with fresh copy again."""
    started = asyncio.get_running_loop().time()
    while True:
        elapsed = asyncio.get_running_loop().time() - started
        if not (await writer.workflow.generate(BRIEF)).cached:
            return elapsed
        assert elapsed < limit_s, f"still served from cache after {elapsed:.2f} s"
        await asyncio.sleep(0.05)


async def test_an_invalidation_on_one_replica_reaches_the_others_l1_within_a_second(
    redis_server: RedisServer,
) -> None:
    a, b = await _replica(redis_server), await _replica(redis_server)
    await a.workflow.generate(BRIEF)
    assert (await b.workflow.generate(BRIEF)).cache_tier == "l2"
    assert (await b.workflow.generate(BRIEF)).cache_tier == "l1"
    await a.cache.delete(*EVERYTHING)
    assert await _until_fresh(b, limit_s=1.0) < 1.0
    stats = await b.cache.stats()
    assert stats["invalidation"]["received"] >= 1
    await a.stop()
    await b.stop()


async def test_a_replica_that_missed_the_message_clears_l1_at_its_next_epoch_check(
    redis_server: RedisServer,
) -> None:
    a, b = await _replica(redis_server), await _replica(redis_server)
    await a.workflow.generate(BRIEF)
    await b.workflow.generate(BRIEF)
    assert (await b.workflow.generate(BRIEF)).cache_tier == "l1"
    redis_server.kill()
    redis_server.start()  # b's subscription is gone; a's next publish is not heard by b
    for _ in range(50):
        try:
            await a.cache.delete(*EVERYTHING)
            break
        except CacheUnavailable:
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("Redis never came back for a")
    # b resubscribes, reads an epoch it never saw and drops its L1
    assert await _until_fresh(b, limit_s=3.0) < 3.0
    assert (await b.cache.stats())["invalidation"]["missed_epochs"] >= 1
    await a.stop()
    await b.stop()


async def test_with_redis_down_an_invalidation_is_refused_not_half_done(
    redis_server: RedisServer,
) -> None:
    a = await _replica(redis_server)
    await a.workflow.generate(BRIEF)
    redis_server.kill()
    with pytest.raises(CacheUnavailable):
        await a.cache.delete(*EVERYTHING)
    assert len(a.cache.l1) == 1  # nothing was dropped here either
    await a.stop()


async def test_the_admin_route_answers_503_when_redis_cannot_be_told(
    redis_server: RedisServer,
) -> None:
    import httpx

    from copygen.api.app import create_app
    from copygen.config import Settings
    from copygen.engine.engine import Engine

    settings = Settings(warmup=False, redis_url=redis_server.url)
    app = create_app(settings, engine=Engine(settings, FakeRunner()))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        assert (await client.delete("/v1/cache")).status_code == 200
        redis_server.kill()
        refused = await client.delete("/v1/cache")
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "cache_unavailable"
    assert "Redis" in refused.json()["error"]["message"]
    assert refused.headers["retry-after"] == "5"
