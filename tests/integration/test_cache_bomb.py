"""A zlib bomb written straight into a real redis-server (anyone who can write to Redis can,
when values are not encrypted): warming and reading treat it as a corrupt entry, a miss, and
never inflate it whole."""

from __future__ import annotations

import tracemalloc
import zlib

import redis

from copygen.cache.keys import KEY_PREFIX
from copygen.cache.l2 import HOT_KEY
from copygen.cache.tiered import build_cache
from copygen.config import Settings
from tests.services import RedisServer

INFLATED = 256 * 1024 * 1024  # bytes each bomb inflates to
MIB = 1024 * 1024


def _bomb() -> bytes:
    """b"Z" (the codec's zlib tag) + zeros compressed about 1000:1, built a MiB at a time."""
    packer = zlib.compressobj(9)
    zeros = bytes(MIB)
    parts = [packer.compress(zeros) for _ in range(INFLATED // MIB)]
    return b"Z" + b"".join(parts) + packer.flush()


async def test_a_zlib_bomb_in_redis_is_a_miss_and_is_never_inflated_whole(
    redis_server: RedisServer,
) -> None:
    bomb = _bomb()
    assert len(bomb) < MIB
    keys = [f"{KEY_PREFIX}:v1:bomb:sms:{i}" for i in range(3)]
    client = redis.Redis.from_url(redis_server.url)
    for rank, key in enumerate(keys):
        client.set(key, bomb)
        client.zadd(HOT_KEY, {key: 100 - rank})

    cache = build_cache(Settings(warmup=False, redis_url=redis_server.url))
    tracemalloc.start()
    try:
        warmed = await cache.start(warm_entries=256)
        found = await cache.get(keys[0])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await cache.stop()
    assert (warmed, found) == (0, None)
    assert len(cache.l1) == 0
    assert cache.counters.corrupt == 1
    # The blobs themselves (under a MiB each) plus a bounded inflation, not 256 MiB.
    assert peak < 32 * MIB, peak / MIB
