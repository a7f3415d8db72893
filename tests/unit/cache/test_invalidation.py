"""Invalidation between two listeners on a real Redis: a published pattern reaches every
replica (the publisher too), a replica that missed messages clears all of L1 at its next
epoch check, and a publish Redis cannot take is a clear error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis

from copygen.cache.invalidation import EPOCH_KEY, Invalidation
from copygen.errors import CacheUnavailable
from tests.services import RedisServer, free_port


class Replica:
    """What one replica's L1 heard: patterns, and how often it was told to clear all."""

    def __init__(self) -> None:
        self.patterns: list[str] = []
        self.cleared = 0

    def missed(self) -> None:
        self.cleared += 1


@asynccontextmanager
async def listening(url: str, replica: Replica) -> AsyncIterator[Invalidation]:
    channel = Invalidation(
        url, on_pattern=replica.patterns.append, on_missed=replica.missed, check_s=0.2
    )
    channel.start()
    try:
        await until(lambda: channel.connected)
        yield channel
    finally:
        await channel.stop()


async def until(condition: Callable[[], object], limit_s: float = 2.0) -> None:
    for _ in range(int(limit_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")


async def test_a_published_pattern_reaches_every_replica(redis_server: RedisServer) -> None:
    a, b = Replica(), Replica()
    async with listening(redis_server.url, a) as publisher, listening(redis_server.url, b):
        await publisher.publish("copygen:v1:*:sms:*")
        await until(lambda: a.patterns and b.patterns)
        assert a.patterns == b.patterns == ["copygen:v1:*:sms:*"]
        assert publisher.received_total == 1
        await asyncio.sleep(0.3)  # an epoch check after the message finds nothing missed
    assert (a.cleared, b.cleared) == (0, 0)


async def test_a_replica_that_missed_a_message_clears_l1_at_its_next_check(
    redis_server: RedisServer,
) -> None:
    late = Replica()
    async with listening(redis_server.url, late) as channel:
        # Another replica's invalidation whose message this one never heard: only the epoch
        # it replaced is left to tell.
        redis = Redis.from_url(redis_server.url)
        await redis.set(EPOCH_KEY, "an-epoch-never-heard-of")
        await redis.aclose()
        await until(lambda: late.cleared)
        assert (late.patterns, late.cleared, channel.missed_total) == ([], 1, 1)
        assert channel.epoch == "an-epoch-never-heard-of"
        await asyncio.sleep(0.3)  # known now: the next check clears nothing
        assert late.cleared == 1


async def test_a_publish_redis_cannot_take_is_cache_unavailable() -> None:
    nowhere = Replica()
    channel = Invalidation(
        f"redis://127.0.0.1:{free_port()}/0", on_pattern=nowhere.patterns.append,
        on_missed=nowhere.missed, timeout_s=0.1,
    )  # fmt: skip
    with pytest.raises(CacheUnavailable):
        await channel.publish("copygen:v1:*")
    assert channel.epoch is None
    await channel.stop()
