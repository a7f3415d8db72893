"""Two-tier result cache: L1 in-process TTL-LRU with TinyLFU admission, L2 Redis shared by
every replica. Redis trouble is a cache miss, never an error: short timeouts, one retry, a
bounded pool and a circuit breaker in front of it.

Values are JSON with a schema version, zlib-compressed above a size threshold and optionally
sealed with AES-GCM (the cache key is the associated data, so a value copied under another
key does not decrypt). Anything that does not decode is a miss and is overwritten later.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import stamina
from cachetools import TTLCache
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from copygen.config import Settings, decode_key
from copygen.domain import CopyResult, Usage, Variant
from copygen.engine.breaker import BreakerState, CircuitBreaker
from copygen.engine.cachekey import CACHE_SCHEMA_VERSION, KEY_PREFIX

log = logging.getLogger("copygen.cache")

Tier = Literal["l1", "l2"]
T = TypeVar("T")

# --- values ---------------------------------------------------------------------------------

_PLAIN, _ZLIB, _SEALED = b"J", b"Z", b"E"
_NONCE_BYTES = 12


class Codec:
    """CopyResult ⇄ bytes: ``J`` + JSON, ``Z`` + zlib(JSON), or ``E`` + nonce + AES-GCM(inner)."""

    def __init__(self, *, compress_min_bytes: int = 1024, key: bytes | None = None) -> None:
        self.compress_min_bytes = compress_min_bytes
        self._aead = AESGCM(key) if key else None

    def encode(self, cache_key: str, result: CopyResult) -> bytes:
        stored = dataclasses.asdict(result)
        del stored["jobs"]  # which runner jobs made it matters only to the request that ran them
        envelope = {"v": CACHE_SCHEMA_VERSION, "result": stored}
        raw = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        if len(raw) >= self.compress_min_bytes:
            inner = _ZLIB + zlib.compress(raw, 6)
        else:
            inner = _PLAIN + raw
        if self._aead is None:
            return inner
        nonce = os.urandom(_NONCE_BYTES)
        return _SEALED + nonce + self._aead.encrypt(nonce, inner, cache_key.encode())

    def decode(self, cache_key: str, blob: bytes) -> CopyResult | None:
        """The result, or None for anything corrupt, foreign, unsealed-when-sealing or old."""
        try:
            if self._aead is not None:
                if blob[:1] != _SEALED:
                    return None
                nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
                blob = self._aead.decrypt(nonce, sealed, cache_key.encode())
            kind, body = blob[:1], blob[1:]
            if kind == _ZLIB:
                body = zlib.decompress(body)
            elif kind != _PLAIN:
                return None
            envelope = json.loads(body)
            if envelope.get("v") != CACHE_SCHEMA_VERSION:
                return None
            return _result_from_dict(envelope["result"])
        except Exception:  # noqa: BLE001 - any undecodable value is a miss
            return None


def _result_from_dict(data: dict[str, Any]) -> CopyResult:
    variants = [
        Variant(**{**v, "keywords_missing": tuple(v["keywords_missing"])}) for v in data["variants"]
    ]
    return CopyResult(
        id=str(data["id"]),
        model=str(data["model"]),
        channel=str(data["channel"]),
        variants=variants,
        requested=int(data["requested"]),
        rounds=int(data["rounds"]),
        usage=Usage(**data["usage"]),
        timings_ms={str(k): float(v) for k, v in data["timings_ms"].items()},
    )


# --- L1 -------------------------------------------------------------------------------------


class FrequencySketch:
    """TinyLFU's popularity estimate: a count-min sketch of 4 rows with counters capped at 15,
    halved every ``sample`` increments so that old popularity fades."""

    DEPTH = 4
    MAX_COUNT = 15

    def __init__(self, capacity: int) -> None:
        width = 16
        while width < max(16, capacity * 4):
            width *= 2
        self._mask = width - 1
        self._rows = [bytearray(width) for _ in range(self.DEPTH)]
        self._seeds = [secrets.randbits(64) | 1 for _ in range(self.DEPTH)]
        self._sample = max(64, capacity * 10)
        self._added = 0

    def _slots(self, key: Hashable) -> list[int]:
        h = hash(key)
        return [((h * seed) >> 17) & self._mask for seed in self._seeds]

    def increment(self, key: Hashable) -> None:
        for row, slot in zip(self._rows, self._slots(key), strict=True):
            if row[slot] < self.MAX_COUNT:
                row[slot] += 1
        self._added += 1
        if self._added >= self._sample:
            self._age()

    def estimate(self, key: Hashable) -> int:
        return min(row[slot] for row, slot in zip(self._rows, self._slots(key), strict=True))

    def _age(self) -> None:
        self._added //= 2
        for row in self._rows:
            for i, count in enumerate(row):
                row[i] = count >> 1


class _LRUPeekCache(TTLCache[str, "_Entry"]):
    """cachetools' TTLCache plus a look at the entry it would evict next."""

    def lru_key(self) -> str | None:
        links = self._TTLCache__links  # type: ignore[attr-defined]
        return next(iter(links), None)


@dataclass(frozen=True, slots=True)
class _Entry:
    result: CopyResult
    size: int


class L1Cache:
    """In-process TTL-LRU bounded by entries and by bytes, with TinyLFU admission: when full,
    a new entry gets in only if it has been asked for more often than the entry it would evict,
    so a stream of one-off briefs does not wash out the hot ones.

    Each entry is charged ``max(its encoded size, max_bytes / max_entries)`` against a budget of
    ``max_bytes``, which bounds both the bytes and the number of entries with one cachetools size.
    """

    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        ttl_s: float,
        *,
        admission: bool = True,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._floor = max(1, max_bytes // max(1, max_entries))
        self._cache = _LRUPeekCache(
            maxsize=max_bytes if max_entries else 0,
            ttl=ttl_s,
            timer=timer,
            getsizeof=self._charge,
        )
        self.sketch = FrequencySketch(max(1, max_entries)) if admission else None
        self.rejected_total = 0
        self.evicted_total = 0

    def _charge(self, entry: _Entry) -> int:
        return max(entry.size, self._floor)

    def get(self, key: str) -> CopyResult | None:
        if self.sketch is not None:
            self.sketch.increment(key)
        entry = self._cache.get(key)
        return None if entry is None else entry.result

    def peek(self, key: str) -> CopyResult | None:
        """Like ``get``, but a miss leaves no trace in the popularity sketch."""
        entry = self._cache.get(key)
        if entry is None:
            return None
        if self.sketch is not None:
            self.sketch.increment(key)
        return entry.result

    def set(self, key: str, result: CopyResult, size: int) -> bool:
        """Store unless admission says no; True when stored."""
        if not self.max_entries:
            return False
        entry = _Entry(result, size)
        charge = self._charge(entry)
        if charge > self._cache.maxsize:
            return False
        cache = self._cache
        cache.expire()
        if key not in cache:
            free = cache.maxsize - cache.currsize
            if charge > free and not self._admit(key):
                self.rejected_total += 1
                return False
            while cache.currsize + charge > cache.maxsize and len(cache):
                cache.popitem()
                self.evicted_total += 1
        cache[key] = entry
        return True

    def _admit(self, key: str) -> bool:
        if self.sketch is None:
            return True
        victim = self._cache.lru_key()
        if victim is None:
            return True
        return self.sketch.estimate(key) > self.sketch.estimate(victim)

    def delete(self, match: Callable[[str], bool]) -> int:
        doomed = [key for key in list(self._cache.keys()) if match(key)]
        for key in doomed:
            self._cache.pop(key, None)
        return len(doomed)

    def __len__(self) -> int:
        self._cache.expire()
        return len(self._cache)

    @property
    def bytes(self) -> int:
        return sum(entry.size for entry in self._cache.values())


# --- L2 -------------------------------------------------------------------------------------

#: What is worth a second try: the connection, not the command.
_RETRYABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)

HOT_KEY = f"{KEY_PREFIX}:hot"
LOCK_PREFIX = f"{KEY_PREFIX}:lock:"
HOT_KEEP = 10_000
_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisL2:
    """L2 on Redis. Every method turns a Redis problem into "nothing": None, False or 0.

    Errors and timeouts feed a circuit breaker; while it is open no call reaches Redis, and
    after ``reset_s`` one probe finds out whether Redis is back. No restart is needed.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl_s: int,
        timeout_s: float = 0.25,
        max_connections: int = 32,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        # Imported here so that an L1-only deployment never needs a Redis client.
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,  # waiting for a free connection
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        # No retries inside the client: _call retries (once, with jitter, within a budget).
        self._redis = Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.breaker = breaker or CircuitBreaker("redis", failure_threshold=3, reset_s=2.0)
        self.errors_total = 0
        self.skipped_total = 0

    @property
    def up(self) -> bool:
        return self.breaker.state is BreakerState.CLOSED

    async def _call(
        self, op: Callable[[], Awaitable[T]], default: T, budget_s: float | None = None
    ) -> T:
        """``op()``, or ``default`` when Redis is skipped (breaker open) or fails. The whole
        call, retry included, gets ``budget_s`` (default: three socket timeouts)."""
        if not self.breaker.allow():
            self.skipped_total += 1
            return default
        budget_s = budget_s or self.timeout_s * 3
        value = default
        try:
            # The socket timeout bounds each try; this bounds the whole call, retry included.
            # The one retry layer for Redis: a second try after a short jittered pause.
            async with asyncio.timeout(budget_s):
                async for attempt in stamina.retry_context(
                    on=_RETRYABLE,
                    attempts=2,
                    timeout=budget_s,
                    wait_initial=0.005,
                    wait_max=0.02,
                    wait_jitter=0.01,
                ):
                    with attempt:
                        value = await op()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - Redis trouble is a miss, never an error
            self.errors_total += 1
            self.breaker.failure()
            log.debug("redis call failed: %s", type(exc).__name__)
            return default
        self.breaker.success()
        return value

    async def get(self, key: str) -> bytes | None:
        async def op() -> bytes | None:
            value = await self._redis.get(key)
            return value if isinstance(value, bytes) else None

        return await self._call(op, None)

    async def set(self, key: str, blob: bytes) -> bool:
        async def op() -> bool:
            await self._redis.set(key, blob, ex=self.ttl_s or None)
            return True

        return await self._call(op, False)

    async def record_hits(self, counts: Counter[str]) -> None:
        """Add access counts to the shared popularity table (a sorted set)."""
        if not counts:
            return

        async def op() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, count in counts.items():
                    pipe.zincrby(HOT_KEY, count, key)
                pipe.zremrangebyrank(HOT_KEY, 0, -HOT_KEEP - 1)
                await pipe.execute()

        await self._call(op, None)

    async def hottest(self, n: int) -> list[tuple[str, bytes]]:
        """The ``n`` most requested keys that still hold a value."""

        async def op() -> list[tuple[str, bytes]]:
            ranked = await self._redis.zrevrange(HOT_KEY, 0, n - 1)
            keys = [k.decode() for k in ranked if isinstance(k, bytes)]
            if not keys:
                return []
            values = await self._redis.mget(keys)
            return [(k, v) for k, v in zip(keys, values, strict=True) if isinstance(v, bytes)]

        return await self._call(op, [])

    async def delete_matching(self, pattern: str) -> int:
        async def op() -> int:
            deleted = 0
            async for batch in _chunks(self._redis.scan_iter(match=pattern, count=500), 500):
                deleted += int(await self._redis.unlink(*batch))
                await self._redis.zrem(HOT_KEY, *batch)
            return deleted

        # Deleting may scan many keys: give it more than one call's budget.
        return await self._call(op, 0, budget_s=max(5.0, self.timeout_s * 3))

    async def acquire_lock(self, key: str, ttl_s: float) -> str | None | Literal[False]:
        """A token when this replica now holds the generation lock for ``key``; None when
        another replica holds it; False when Redis cannot say (then act alone)."""
        token = secrets.token_hex(8)

        async def op() -> str | None:
            taken = await self._redis.set(LOCK_PREFIX + key, token, nx=True, px=int(ttl_s * 1000))
            return token if taken else None

        result: str | None | Literal[False] = await self._call(op, False)
        return result

    async def lock_held(self, key: str) -> bool:
        async def op() -> bool:
            return bool(await self._redis.exists(LOCK_PREFIX + key))

        return await self._call(op, False)

    async def release_lock(self, key: str, token: str) -> None:
        async def op() -> None:
            await self._redis.eval(_RELEASE_LOCK, 1, LOCK_PREFIX + key, token)

        await self._call(op, None)

    async def size(self) -> int | None:
        """Keys in the Redis database (entries, plus the lock and popularity keys)."""

        async def op() -> int | None:
            return int(await self._redis.dbsize())

        return await self._call(op, None)

    async def ping(self) -> bool:
        async def op() -> bool:
            return bool(await self._redis.ping())

        return await self._call(op, False)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._redis.aclose()


async def _chunks(items: Any, size: int) -> Any:
    batch: list[Any] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- single-flight --------------------------------------------------------------------------


class LeaderGone(Exception):
    """The request generating a shared result went away before finishing; generate anew."""


class SingleFlight:
    """Identical concurrent misses in this process share one generation: the first caller leads,
    later ones wait for the leader's result (or its error)."""

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Future[CopyResult]] = {}
        self.shared_total = 0

    def follow(self, key: str) -> asyncio.Future[CopyResult] | None:
        future = self._flights.get(key)
        if future is not None:
            self.shared_total += 1
        return future

    def lead(self, key: str) -> None:
        self._flights[key] = asyncio.get_running_loop().create_future()

    def finish(self, key: str, result: CopyResult | None, error: BaseException | None) -> None:
        future = self._flights.pop(key, None)
        if future is None or future.done():
            return
        if error is None and result is not None:
            future.set_result(result)
            return
        if error is None or isinstance(error, asyncio.CancelledError):
            error = LeaderGone()
        future.set_exception(error)
        future.exception()  # mark retrieved: nobody may be waiting, and asyncio would log it

    def __len__(self) -> int:
        return len(self._flights)


# --- both tiers -----------------------------------------------------------------------------


@dataclass
class CacheCounters:
    hits_l1: int = 0
    hits_l2: int = 0
    misses: int = 0
    sets: int = 0
    corrupt: int = 0
    peer_waits: int = 0


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
    ) -> None:
        self.l1 = l1
        self.l2 = l2
        self.codec = codec
        self.flights = SingleFlight()
        self.lock_ttl_s = lock_ttl_s
        self.flush_s = flush_s
        self.peer_poll_s = peer_poll_s
        self.counters = CacheCounters()
        self._hot: Counter[str] = Counter()
        self._flusher: asyncio.Task[None] | None = None

    def l2_breaker_hook(self, on_change: Callable[[str, BreakerState, BreakerState], None]) -> None:
        """Report Redis up/down transitions (for logs and metrics)."""
        if self.l2 is not None:
            self.l2.breaker.on_change = on_change

    async def start(self, warm_entries: int = 0) -> int:
        """Warm L1 from the shared popularity table and start the count flusher."""
        warmed = await self.warm(warm_entries) if warm_entries else 0
        if self.l2 is not None and self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name="copygen-cache-flush")
        return warmed

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()
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
        l1 = self.l1.delete(match)
        l2 = await self.l2.delete_matching(pattern) if self.l2 is not None else 0
        return {"l1": l1, "l2": l2}

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

    async def wait_for_peer(self, key: str, timeout_s: float) -> CopyResult | None:
        """Poll L2 while another replica holds the lock for ``key``; its result, or None when
        the lock goes away without one (the peer failed) or the wait times out."""
        if self.l2 is None:
            return None
        self.counters.peer_waits += 1
        deadline = time.monotonic() + min(timeout_s, self.lock_ttl_s)
        while time.monotonic() < deadline:
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
    return TieredCache(l1, l2, codec, lock_ttl_s=settings.cache_lock_ttl_s)
