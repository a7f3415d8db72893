"""L2 on a real redis-server: sharing across replicas, expiry, corrupt entries, cross-replica
single-flight, warming, invalidation, encryption at rest, and Redis faults (kill -9, SIGSTOP)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import time

import httpx
import redis

from copygen.api.app import create_app
from copygen.auth import ANONYMOUS
from copygen.cache.keys import copy_cache_key
from copygen.cache.l2 import HOT_KEY
from copygen.config import Settings
from copygen.domain import CopyBrief
from copygen.engine.engine import Engine
from copygen.service.runtime import Runtime
from tests.builders import started_runtime
from tests.fakes import FakeRunner
from tests.services import RedisServer

BRIEF = CopyBrief(product="solar charger", channel="sms", variants=2, seed=1)


async def _copywriter(
    server: RedisServer, runner: FakeRunner | None = None, **kw: object
) -> Runtime:
    return await started_runtime(runner or FakeRunner(), redis_url=server.url, **kw)


def _key(copywriter: Runtime, brief: CopyBrief = BRIEF) -> str:
    return copy_cache_key(brief, copywriter.workflow.key_context(ANONYMOUS))


async def test_an_entry_written_by_one_replica_is_an_l2_hit_on_another_then_l1(
    redis_server: RedisServer,
) -> None:
    a_runner, b_runner = FakeRunner(), FakeRunner()
    a = await _copywriter(redis_server, a_runner)
    b = await _copywriter(redis_server, b_runner)
    written = await a.workflow.generate(BRIEF)
    from_l2 = await b.workflow.generate(BRIEF)
    from_l1 = await b.workflow.generate(BRIEF)
    assert (from_l2.cached, from_l2.cache_tier) == (True, "l2")
    assert (from_l1.cached, from_l1.cache_tier) == (True, "l1")
    assert from_l2.variants == written.variants
    assert not b_runner.calls
    assert (await b.cache.stats())["hits"] == {"l1": 1, "l2": 1}
    await a.stop()
    await b.stop()


async def test_entries_expire_in_both_tiers(redis_server: RedisServer) -> None:
    runner = FakeRunner()
    engine = await _copywriter(redis_server, runner, cache_ttl_s=1)
    await engine.workflow.generate(BRIEF)
    assert redis.Redis.from_url(redis_server.url).ttl(_key(engine)) in (0, 1)
    await asyncio.sleep(1.2)
    assert not (await engine.workflow.generate(BRIEF)).cached
    assert len(runner.calls) == 2
    await engine.stop()


async def test_corrupt_and_old_schema_entries_are_misses_and_get_replaced(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    writer = await _copywriter(redis_server)
    key = _key(writer)
    for garbage in (b"\x00garbage", b'J{"v": 0, "result": {}}', b'J{"v": 1, "result": 7}'):
        client.set(key, garbage)
        reader = await _copywriter(redis_server)  # fresh L1
        result = await reader.workflow.generate(BRIEF)
        assert not result.cached
        assert (await reader.cache.stats())["corrupt_entries"] == 1
        assert writer.cache.codec.decode(key, client.get(key)) is not None  # type: ignore[arg-type]
        await reader.stop()
    await writer.stop()


async def test_identical_misses_on_two_replicas_run_one_generation(
    redis_server: RedisServer,
) -> None:
    a_runner, b_runner = FakeRunner(step_delay_s=0.05), FakeRunner(step_delay_s=0.05)
    a = await _copywriter(redis_server, a_runner)
    b = await _copywriter(redis_server, b_runner)
    results = await asyncio.gather(
        *(engine.workflow.generate(BRIEF) for engine in (a, b, a, b, a, b))
    )
    assert len(a_runner.calls) + len(b_runner.calls) == 1
    assert len({tuple(v.text for v in r.variants) for r in results}) == 1
    assert sum(1 for r in results if r.cache_tier == "l2") >= 1  # waited for the peer
    await a.stop()
    await b.stop()


async def test_a_starting_replica_warms_l1_with_the_hottest_entries(
    redis_server: RedisServer,
) -> None:
    a = await _copywriter(redis_server)
    briefs = [dataclasses.replace(BRIEF, product=f"p{i}") for i in range(5)]
    for brief in briefs:
        await a.workflow.generate(brief)
    for _ in range(3):
        await a.workflow.generate(briefs[4])
    await a.stop()  # flushes the access counts
    hottest = redis.Redis.from_url(redis_server.url).zrevrange(HOT_KEY, 0, 0)
    assert hottest == [_key(a, briefs[4]).encode()]

    runner = FakeRunner()
    b = await _copywriter(redis_server, runner, cache_warm_entries=2)
    assert len(b.cache.l1) == 2
    result = await b.workflow.generate(briefs[4])
    assert result.cache_tier == "l1"
    assert not runner.calls
    await b.stop()


async def test_invalidation_by_channel_reaches_redis(redis_server: RedisServer) -> None:
    from copygen.cache.keys import key_pattern

    engine = await _copywriter(redis_server)
    email = dataclasses.replace(BRIEF, channel="email_subject")
    await engine.workflow.generate(BRIEF)
    await engine.workflow.generate(email)
    deleted = await engine.cache.delete(
        key_pattern(channel="sms"), lambda key: key.split(":")[4] == "sms"
    )
    assert deleted == {"l1": 1, "l2": 1}
    client = redis.Redis.from_url(redis_server.url)
    assert client.exists(_key(engine, email))
    assert not client.exists(_key(engine, BRIEF))
    await engine.stop()


async def test_values_are_encrypted_at_rest_when_a_key_is_set(redis_server: RedisServer) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    engine = await _copywriter(redis_server, cache_encryption_key=key)
    await engine.workflow.generate(BRIEF)
    stored = redis.Redis.from_url(redis_server.url).get(_key(engine))
    assert stored is not None
    assert stored[:1] == b"E"
    assert b"Fresh" not in stored
    other = await _copywriter(redis_server, cache_encryption_key=key)
    assert (await other.workflow.generate(BRIEF)).cache_tier == "l2"
    await engine.stop()
    await other.stop()


# --- faults ---------------------------------------------------------------------------------


def _app_and_client(server: RedisServer) -> tuple[object, httpx.AsyncClient]:
    settings = Settings(warmup=False, redis_url=server.url, cache_l1_size=0)
    app = create_app(settings, engine=Engine(settings, FakeRunner()))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    return app, client


async def _load(client: httpx.AsyncClient, n: int, statuses: list[int], tag: str) -> None:
    for i in range(n):
        body = {"product": f"{tag}-{i % 5}", "variants": 1, "seed": 1}
        statuses.append((await client.post("/v1/copy", json=body)).status_code)


async def test_redis_killed_under_load_costs_no_errors_and_hits_resume_after_restart(
    redis_server: RedisServer,
) -> None:
    app, client = _app_and_client(redis_server)  # L1 off: every hit comes from Redis
    async with app.router.lifespan_context(app), client:  # type: ignore[attr-defined]
        while (await client.get("/health/ready")).status_code != 200:
            await asyncio.sleep(0.01)
        statuses: list[int] = []
        load = asyncio.gather(*(_load(client, 40, statuses, f"c{c}") for c in range(4)))
        await asyncio.sleep(0.1)
        redis_server.kill()
        await load
        assert len(statuses) == 160
        assert set(statuses) == {200}
        health = (await client.get("/health")).json()
        assert health["redis"]["up"] is False
        assert (await client.get("/health/ready")).status_code == 200

        redis_server.start()  # same port, empty: the service reconnects by itself
        body = {"product": "after restart", "variants": 1}
        deadline = time.monotonic() + 15
        tier = None
        while time.monotonic() < deadline and tier != "l2":
            await client.post("/v1/copy", json=body)
            tier = (await client.post("/v1/copy", json=body)).json()["cache_tier"]
            await asyncio.sleep(0.2)
        assert tier == "l2"
        assert (await client.get("/health")).json()["redis"]["up"] is True


async def test_a_hung_redis_adds_bounded_latency_until_the_breaker_opens(
    redis_server: RedisServer,
) -> None:
    app, client = _app_and_client(redis_server)
    async with app.router.lifespan_context(app), client:  # type: ignore[attr-defined]
        while (await client.get("/health/ready")).status_code != 200:
            await asyncio.sleep(0.01)
        await client.post("/v1/copy", json={"product": "warm", "variants": 1})
        redis_server.pause()
        try:
            latencies = []
            for i in range(8):
                started = time.perf_counter()
                response = await client.post("/v1/copy", json={"product": f"h{i}", "variants": 1})
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200
                assert (await client.get("/health/live")).status_code == 200
            stats = (await client.get("/v1/cache/stats")).json()
        finally:
            redis_server.resume()
        # redis-py's defaults would take ~58 s per call here; each call is bounded by the
        # socket timeout (0.25 s, one retry), and once the breaker opens Redis is skipped.
        assert max(latencies) < 2.0
        assert stats["l2"]["breaker"] in ("open", "half_open")
        assert stats["l2"]["skipped_while_open"] > 0
        assert min(latencies[-3:]) < 0.2
