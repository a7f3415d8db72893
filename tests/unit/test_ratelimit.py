"""Per-client limits: counted in process without Redis, shared by every replica through a real
Redis, and never unlimited when Redis is down (each replica then counts on its own)."""

from __future__ import annotations

from limits import parse

from copygen.ratelimit import Limiter
from tests.services import RedisServer, free_port

THREE_A_MINUTE = parse("3/minute")


async def test_without_redis_each_identity_gets_its_own_window() -> None:
    limiter = Limiter(None)
    assert [await limiter.hit(THREE_A_MINUTE, "key:a") for _ in range(4)] == [True] * 3 + [False]
    assert await limiter.hit(THREE_A_MINUTE, "key:b")
    remaining, reset_s = await limiter.stats(THREE_A_MINUTE, "key:b")
    assert remaining == 2
    assert 0 < reset_s <= 60
    assert limiter.status() == {
        "shared": False, "redis_configured": False, "breaker": None, "local_fallbacks": 0,
    }  # fmt: skip


async def test_a_cost_spends_that_much_of_the_budget_and_test_spends_none() -> None:
    limiter = Limiter(None)
    tokens = parse("100/hour")
    assert await limiter.hit(tokens, "key:a", cost=60)
    assert await limiter.test(tokens, "key:a")
    assert await limiter.hit(tokens, "key:a", cost=40)
    assert not await limiter.test(tokens, "key:a")
    assert (await limiter.stats(tokens, "key:a"))[0] == 0


async def test_replicas_on_one_redis_share_a_clients_budget(redis_server: RedisServer) -> None:
    a, b = Limiter(redis_server.url), Limiter(redis_server.url)
    assert await a.hit(THREE_A_MINUTE, "key:shop")
    assert await a.hit(THREE_A_MINUTE, "key:shop")
    assert await b.hit(THREE_A_MINUTE, "key:shop")
    assert not await b.hit(THREE_A_MINUTE, "key:shop")
    assert not await a.hit(THREE_A_MINUTE, "key:shop")
    assert b.status()["shared"] is True
    assert b.fallbacks_total == 0


async def test_with_redis_down_each_replica_still_enforces_the_limit() -> None:
    limiter = Limiter(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.05)
    answers = [await limiter.hit(THREE_A_MINUTE, "key:shop") for _ in range(4)]
    assert answers == [True] * 3 + [False]
    status = limiter.status()
    assert (status["shared"], status["redis_configured"], status["breaker"]) == (
        False, True, "open",
    )  # fmt: skip
    assert status["local_fallbacks"] == 4
