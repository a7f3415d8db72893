"""L1: the in-process TTL-LRU, bounded by entries and bytes, with TinyLFU admission."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from cachetools import TTLCache

from copygen.domain import CopyResult


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

    def clear(self) -> int:
        """Drop every entry; how many there were."""
        count = len(self._cache)
        self._cache.clear()
        return count

    def __len__(self) -> int:
        self._cache.expire()
        return len(self._cache)

    @property
    def bytes(self) -> int:
        return sum(entry.size for entry in self._cache.values())
