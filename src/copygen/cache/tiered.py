"""Both tiers together: L1 then L2 on reads, both on writes, popularity for warm starts, and the
cross-replica generation lock."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from copygen.cache.codec import Codec
from copygen.cache.invalidation import Invalidation
from copygen.cache.l1 import L1Cache
from copygen.cache.l2 import RedisL2
from copygen.cache.singleflight import SingleFlight
from copygen.config import Settings, decode_key
from copygen.deadline import Deadline
from copygen.domain import CopyResult

Tier = Literal["l1", "l2"]


@dataclass
class CacheCounters:
    hits_l1: int = 0
    hits_l2: int = 0
    misses: int = 0
    sets: int = 0
    corrupt: int = 0
    peer_waits: int = 0
    invalidations: int = 0


class TieredCache:
    """L1 then L2 on reads (an L2 hit is promoted into L1), both on writes (write-through).

    Access counts go to Redis in the background every ``flush_s`` so that a starting replica
    can warm its L1 with the entries every replica asks for most (``warm``).
    """

    def __init__(
        self,
        l1: L1Cache,
        l2: RedisL2 | None,
        codec: Codec,
        *,
        lock_ttl_s: float = 30.0,
        flush_s: float = 5.0,
        peer_poll_s: float = 0.05,
        redis_url: str | None = None,
        invalidation_check_s: float = 2.0,
    ) -> None:
        self.l1 = l1
        self.l2 = l2
        self.codec = codec
        #: Cross-replica invalidation, with a shared L2 only.
        self.invalidation = (
            Invalidation(
                redis_url,
                on_pattern=self._drop_matching,
                on_missed=self._drop_all,
                timeout_s=l2.timeout_s,
                check_s=invalidation_check_s,
            )
            if l2 is not None and redis_url
            else None
        )
        self.flights = SingleFlight()
        self.lock_ttl_s = lock_ttl_s
        self.flush_s = flush_s
        self.peer_poll_s = peer_poll_s
        self.counters = CacheCounters()
        self._hot: Counter[str] = Counter()
        self._flusher: asyncio.Task[None] | None = None

    async def start(self, warm_entries: int = 0) -> int:
        """Warm L1 from the shared popularity table and start the count flusher."""
        warmed = await self.warm(warm_entries) if warm_entries else 0
        if self.l2 is not None and self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name="copygen-cache-flush")
        if self.invalidation is not None:
            self.invalidation.start()
        return warmed

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()
        if self.invalidation is not None:
            await self.invalidation.stop()
        if self.l2 is not None:
            await self.l2.close()

    async def get(self, key: str) -> tuple[CopyResult, Tier] | None:
        result = self.l1.get(key)
        if result is not None:
            self.counters.hits_l1 += 1
            self._hot[key] += 1
            return result, "l1"
        if self.l2 is not None:
            blob = await self.l2.get(key)
            if blob is not None:
                result = self.codec.decode(key, blob)
                if result is not None:
                    self.l1.set(key, result, len(blob))
                    self.counters.hits_l2 += 1
                    self._hot[key] += 1
                    return result, "l2"
                self.counters.corrupt += 1
        self.counters.misses += 1
        return None

    def peek_l1(self, key: str) -> CopyResult | None:
        """An L1 hit, counted as one; a miss is not counted (the caller will look again)."""
        result = self.l1.peek(key)
        if result is not None:
            self.counters.hits_l1 += 1
            self._hot[key] += 1
        return result

    async def set(self, key: str, result: CopyResult) -> None:
        blob = self.codec.encode(key, result)
        self.l1.set(key, result, len(blob))
        self.counters.sets += 1
        if self.l2 is not None:
            await self.l2.set(key, blob)
            self._hot[key] += 1

    async def delete(self, pattern: str, match: Callable[[str], bool]) -> dict[str, int]:
        """Delete from Redis, drop this replica's L1 entries, tell every replica. With a
        shared cache that cannot be reached this raises CacheUnavailable before touching
        anything, rather than answering with a partial success."""
        l2 = await self.l2.delete_matching(pattern) if self.l2 is not None else 0
        l1 = self.l1.delete(match)
        if self.invalidation is not None:
            await self.invalidation.publish(pattern)
        return {"l1": l1, "l2": l2}

    def _drop_matching(self, pattern: str) -> None:
        self.counters.invalidations += 1
        self.l1.delete(lambda key: fnmatch.fnmatchcase(key, pattern))

    def _drop_all(self) -> None:
        self.counters.invalidations += 1
        self.l1.clear()

    async def warm(self, n: int) -> int:
        if self.l2 is None or n <= 0:
            return 0
        warmed = 0
        for key, blob in await self.l2.hottest(n):
            result = self.codec.decode(key, blob)
            if result is not None and self.l1.set(key, result, len(blob)):
                warmed += 1
        return warmed

    async def lock(self, key: str) -> str | None | Literal[False]:
        """Cross-replica single-flight: a token when this replica should generate ``key``,
        None when another replica is generating it, False when Redis cannot tell."""
        if self.l2 is None:
            return False
        return await self.l2.acquire_lock(key, self.lock_ttl_s)

    async def unlock(self, key: str, token: str) -> None:
        if self.l2 is not None:
            await self.l2.release_lock(key, token)

    async def wait_for_peer(self, key: str, deadline: Deadline) -> CopyResult | None:
        """Poll L2 while another replica holds the lock for ``key``; its result, or None when
        the lock goes away without one (the peer failed), the lock's lifetime passes or the
        request's ``deadline`` leaves no time to wait."""
        if self.l2 is None:
            return None
        self.counters.peer_waits += 1
        deadline_s = time.monotonic() + min(deadline.remaining(), self.lock_ttl_s)
        while time.monotonic() < deadline_s:
            await asyncio.sleep(self.peer_poll_s)
            # Lock first, value second: a peer stores its value before it unlocks, so a value
            # read after the lock is seen gone is never missed.
            held = await self.l2.lock_held(key)
            blob = await self.l2.get(key)
            if blob is not None and (result := self.codec.decode(key, blob)) is not None:
                self.l1.set(key, result, len(blob))
                return result
            if not held:
                return None
        return None

    async def flush(self) -> None:
        if self.l2 is None or not self._hot:
            return
        counts, self._hot = self._hot, Counter()
        await self.l2.record_hits(counts)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            await self.flush()

    async def stats(self) -> dict[str, Any]:
        c = self.counters
        hits = c.hits_l1 + c.hits_l2
        lookups = hits + c.misses
        stats: dict[str, Any] = {
            "hits": {"l1": c.hits_l1, "l2": c.hits_l2},
            "misses": c.misses,
            "hit_rate": round(hits / lookups, 4) if lookups else 0.0,
            "sets": c.sets,
            "corrupt_entries": c.corrupt,
            "single_flight_shared": self.flights.shared_total,
            "peer_waits": c.peer_waits,
            "l1": {
                "entries": len(self.l1),
                "bytes": self.l1.bytes,
                "max_entries": self.l1.max_entries,
                "max_bytes": self.l1.max_bytes,
                "admission_rejected": self.l1.rejected_total,
                "evicted": self.l1.evicted_total,
            },
            "l2": None,
        }
        if self.l2 is not None:
            stats["l2"] = {
                "configured": True,
                "up": self.l2.up,
                "breaker": self.l2.breaker.state.value,
                "errors": self.l2.errors_total,
                "skipped_while_open": self.l2.skipped_total,
                "keys": await self.l2.size(),
            }
        if self.invalidation is not None:
            stats["invalidation"] = {
                "subscribed": self.invalidation.connected,
                "received": self.invalidation.received_total,
                "missed_epochs": self.invalidation.missed_total,
                "l1_drops": c.invalidations,
            }
        return stats


def build_cache(settings: Settings) -> TieredCache:
    """The cache the settings describe: L1 always (size 0 turns it off), L2 when a Redis URL
    is set. No connection is made here; the first call connects."""
    key = settings.cache_encryption_key
    codec = Codec(
        compress_min_bytes=settings.cache_compress_min_bytes,
        key=decode_key(key.get_secret_value()) if key else None,
    )
    l1 = L1Cache(
        settings.cache_l1_size,
        settings.cache_l1_max_bytes,
        settings.cache_ttl_s or float("inf"),
        admission=settings.cache_admission,
    )
    l2 = None
    if settings.redis_url:
        l2 = RedisL2(
            settings.redis_url,
            ttl_s=settings.cache_ttl_s,
            timeout_s=settings.redis_timeout_s,
            max_connections=settings.redis_max_connections,
        )
    return TieredCache(
        l1,
        l2,
        codec,
        lock_ttl_s=settings.cache_lock_ttl_s,
        flush_s=settings.cache_flush_s,
        redis_url=settings.redis_url,
        invalidation_check_s=settings.cache_invalidation_check_s,
    )
