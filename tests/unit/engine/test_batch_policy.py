"""The batch-forming policy, a pure function of queue, running batch and measured load."""

from __future__ import annotations

import pytest

from copygen.engine.batch_policy import BatchPolicy, Decision, LoadStats


def policy(**kwargs: object) -> BatchPolicy:
    return BatchPolicy(**{"max_batch_size": 8, "max_wait_s": 0.05, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("queued", "running", "expected"),
    [
        (0, 0, 0),  # nothing to do
        (3, 2, 3),  # continuous: join the running batch at once
        (10, 2, 6),  # ... up to the ceiling
        (5, 8, 0),  # batch full
        (12, 0, 8),  # idle and a full batch is waiting: start it
    ],
)
def test_ceilings_and_continuous_joining(queued: int, running: int, expected: int) -> None:
    assert policy().decide(queued, 0.0, running).admit == expected


def test_static_mode_waits_for_the_running_batch() -> None:
    static = policy(continuous=False)
    assert static.decide(3, 0.0, 2) == Decision(0)
    assert static.decide(3, 0.0, 0).admit == 3


def test_adaptive_ceiling_below_the_configured_one() -> None:
    lowered = policy(ceiling=4)
    assert lowered.decide(10, 0.0, 0).admit == 4
    assert lowered.decide(10, 0.0, 3).admit == 1


def test_sparse_traffic_starts_a_lone_request_at_once() -> None:
    stats = LoadStats()
    for t in (0.0, 1.0, 2.0):  # one request a second
        stats.observe_arrival(t)
    stats.observe_step(0.03)
    sparse = policy(stats=stats)
    assert sparse.window_s() == 0.0
    assert sparse.decide(1, 0.0, 0).admit == 1


def test_dense_traffic_holds_an_idle_start_for_one_step_at_most() -> None:
    stats = LoadStats()
    for t in (0.0, 0.005, 0.010, 0.015):  # a request every 5 ms
        stats.observe_arrival(t)
    stats.observe_step(0.02)  # a decoding step takes 20 ms
    dense = policy(stats=stats)
    assert dense.window_s() == pytest.approx(0.02)
    decision = dense.decide(2, 0.005, 0)
    assert decision.admit == 0
    assert decision.wait_s == pytest.approx(0.015)
    assert dense.decide(2, 0.02, 0).admit == 2  # the window has passed


def test_window_never_exceeds_max_wait() -> None:
    stats = LoadStats(arrival_gap_s=0.001, step_s=0.5)
    assert policy(stats=stats, max_wait_s=0.01).window_s() == 0.01
    assert policy(stats=stats, max_wait_s=0.0).window_s() == 0.0


def test_load_stats_are_exponentially_weighted() -> None:
    stats = LoadStats()
    stats.observe_step(1.0)
    stats.observe_step(0.0)
    assert stats.step_s == pytest.approx(0.8)


def test_joins_into_a_busy_batch_are_grouped_until_they_wait_too_long() -> None:
    stats = LoadStats(step_s=0.05)
    busy = policy(max_batch_size=32, max_wait_s=0.15, stats=stats)
    assert busy.decide(2, 0.0, 16).admit == 0  # 16 running: wait for a group of 4
    assert busy.decide(4, 0.0, 16).admit == 4
    assert busy.join_wait_s() == pytest.approx(0.1)  # two measured steps
    assert busy.decide(2, 0.1, 16).admit == 2
    assert policy(max_batch_size=32, max_wait_s=0.02, stats=stats).join_wait_s() == 0.02
