"""Cache building blocks without Redis: the value codec, L1 (TTL, bounds, TinyLFU admission)
and the circuit breaker, on fake clocks."""

from __future__ import annotations

import base64
import dataclasses
import json
import os

import pytest

from copygen.cache.codec import Codec
from copygen.cache.l1 import FrequencySketch, L1Cache
from copygen.config import Settings
from copygen.domain import CopyResult, Usage, Variant
from copygen.resilience.breaker import BreakerState, CircuitBreaker
from tests.fakes import FakeClock

KEY = "copygen:copy:v1:abc:sms:123"


def result(text: str = "Charge with the sun", n: int = 1) -> CopyResult:
    variant = Variant(text, len(text), 30, True, ("solar",), 0.9)
    return CopyResult(
        id="copy-1",
        model="m",
        channel="sms",
        variants=[variant] * n,
        requested=n,
        rounds=2,
        usage=Usage(10, 20),
        timings_ms={"total": 5.0},
    )


def test_values_round_trip_plain_and_compressed() -> None:
    small, big = result(), result("x" * 400, n=10)
    codec = Codec(compress_min_bytes=1024)
    blob = codec.encode(KEY, small)
    assert blob[:1] == b"J"
    assert codec.decode(KEY, blob) == small
    packed = codec.encode(KEY, big)
    assert packed[:1] == b"Z"
    assert len(packed) < 1024
    assert codec.decode(KEY, packed) == big


def test_sealed_values_only_open_with_the_key_under_the_same_cache_key() -> None:
    key = os.urandom(32)
    codec = Codec(key=key)
    blob = codec.encode(KEY, result())
    assert b"Charge" not in blob
    assert codec.decode(KEY, blob) == result()
    assert Codec(key=os.urandom(32)).decode(KEY, blob) is None
    assert codec.decode(KEY + "0", blob) is None  # moved under another key
    assert codec.decode(KEY, Codec().encode(KEY, result())) is None  # unsealed when sealing


def test_corrupt_foreign_and_old_schema_values_are_misses() -> None:
    codec = Codec()
    good = codec.encode(KEY, result())
    old = b"J" + json.dumps({"v": 0, "result": dataclasses.asdict(result())}).encode()
    wrong_shape = b"J" + json.dumps({"v": 1, "result": {"id": 1}}).encode()
    for blob in (b"", b"garbage", good[:-5], b"Z" + b"not zlib", old, wrong_shape, b"J[]"):
        assert codec.decode(KEY, blob) is None


def test_settings_validate_the_encryption_key() -> None:
    good = base64.b64encode(os.urandom(32)).decode()
    assert Settings(cache_encryption_key=good).cache_encryption_key is not None  # type: ignore[arg-type]
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError, match="ENCRYPTION_KEY") as error:
            Settings(cache_encryption_key=bad)  # type: ignore[arg-type]
        assert bad not in str(error.value)


def test_l1_entries_expire_after_the_ttl() -> None:
    clock = FakeClock()
    l1 = L1Cache(10, 10_000, ttl_s=60, timer=clock)
    assert l1.set("a", result(), 100)
    clock.advance(59)
    assert l1.get("a") == result()
    clock.advance(2)
    assert l1.get("a") is None
    assert len(l1) == 0


def test_l1_is_bounded_by_entries_and_by_bytes() -> None:
    by_count = L1Cache(3, 1_000_000, ttl_s=60, admission=False)
    for i in range(10):
        by_count.set(f"k{i}", result(), 10)
    assert len(by_count) == 3
    by_bytes = L1Cache(100, 1000, ttl_s=60, admission=False)
    for i in range(10):
        by_bytes.set(f"k{i}", result(), 300)
    assert len(by_bytes) == 3
    assert by_bytes.bytes <= 1000
    assert not by_bytes.set("huge", result(), 5000)  # bigger than the whole budget


def test_l1_evicts_the_least_recently_used_entry() -> None:
    l1 = L1Cache(2, 1_000_000, ttl_s=60, admission=False)
    l1.set("a", result(), 10)
    l1.set("b", result(), 10)
    l1.get("a")
    l1.set("c", result(), 10)
    assert l1.get("a") is not None
    assert l1.get("b") is None


def _replay(l1: L1Cache, hot: list[str], rounds: int) -> int:
    """Hot keys asked for repeatedly between bursts of one-off keys; hits on hot keys."""
    hits = 0
    one_off = 0
    for _ in range(rounds):
        for key in hot:
            if l1.get(key) is None:
                l1.set(key, result(), 10)
            else:
                hits += 1
        for _ in range(20):
            key = f"once-{one_off}"
            one_off += 1
            if l1.get(key) is None:
                l1.set(key, result(), 10)
    return hits


def test_tinylfu_admission_keeps_hot_entries_through_a_scan_of_one_offs() -> None:
    hot = [f"hot-{i}" for i in range(8)]
    admitted = _replay(L1Cache(10, 1_000_000, ttl_s=600), hot, rounds=30)
    plain_lru = _replay(L1Cache(10, 1_000_000, ttl_s=600, admission=False), hot, rounds=30)
    assert plain_lru == 0  # 20 one-offs push every hot key out of 10 slots each round
    assert admitted >= 8 * 25


def test_the_frequency_sketch_counts_and_ages() -> None:
    sketch = FrequencySketch(capacity=1024)
    for _ in range(8):
        sketch.increment("a")
    sketch.increment("b")
    assert sketch.estimate("a") == 8  # count-min never undercounts
    assert sketch.estimate("b") >= 1
    assert sketch.estimate("a") > sketch.estimate("b")
    sketch._age()  # what happens every 10 x capacity increments
    assert sketch.estimate("a") == 4


def test_the_frequency_sketch_ages_by_itself() -> None:
    sketch = FrequencySketch(capacity=16)  # ages every 160 increments
    for _ in range(15):
        sketch.increment("a")
    before = sketch.estimate("a")
    for i in range(160):
        sketch.increment(f"noise-{i}")
    assert sketch.estimate("a") < before


def test_breaker_opens_after_repeated_failures_and_lets_exactly_one_probe_through() -> None:
    clock = FakeClock()
    changes: list[tuple[BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(
        "dep",
        failure_threshold=3,
        reset_s=5,
        clock=clock,
        on_change=lambda _, old, new: changes.append((old, new)),
    )
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after_s() == 5
    clock.advance(5)
    assert breaker.allow()  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # nobody else while the probe is out
    breaker.failure()  # the probe failed: open again for another reset_s
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.advance(5)
    assert breaker.allow()
    breaker.success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert changes == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    assert breaker.opened_total == 2


def test_a_lost_probe_is_replaced_after_the_reset_time() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("dep", failure_threshold=1, reset_s=5, clock=clock)
    breaker.failure()
    clock.advance(5)
    assert breaker.allow()  # a probe whose caller never reports back
    clock.advance(4)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()
